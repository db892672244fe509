"""SLURM's units as hpcdl reads and writes them: time limits ("MM", "HH:MM:SS", "D-HH:MM:SS") in minutes."""

from __future__ import annotations

import re

from .errors import SpecError

_TIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time(value: str | int, what: str = "time limit") -> int:
    """A SLURM time ("MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS") in whole minutes."""
    text = str(value).strip()
    m = _TIME_RE.match(text)
    if not m:
        raise SpecError(
            f"invalid {what}: {text!r} (use minutes, HH:MM:SS or D-HH:MM:SS, e.g. 30, 01:00:00, 1-00:00:00)"
        )
    days, a, b, c = m.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = int(days) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:  # MM:SS
        seconds = int(a) * 60 + int(b)
    else:  # MM
        seconds = int(a) * 60
    minutes = -(-seconds // 60)
    if minutes < 1:
        raise SpecError(f"invalid {what}: {text!r} (must be at least one minute)")
    return minutes


def format_time(minutes: int) -> str:
    """Minutes as SLURM's D-HH:MM:SS (HH:MM:SS under a day)."""
    days, rest = divmod(int(minutes), 1440)
    hours, mins = divmod(rest, 60)
    hms = f"{hours:02d}:{mins:02d}:00"
    return f"{days}-{hms}" if days else hms
