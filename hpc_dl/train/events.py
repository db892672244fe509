"""The training side's name for the events writer; the format itself is owned by hpc_dl.events.

Its run_start and epoch_stop events also carry `runqueue(s)`: how long this rank's training thread has
waited, ready to run, for a CPU since it started (the kernel's run delay, /proc/thread-self/schedstat;
null where the kernel does not say). On a host whose cores other processes share, that time is not the
training's own: `hpcdl plan` takes each epoch's share of it out of the measured step.
"""

from __future__ import annotations

from pathlib import Path

from .. import events as _events
from ..runs import RunDir

__all__ = ["Events", "rank_dir", "run_delay"]


class Events(_events.Events):
    STAMPED = ("run_start", "epoch_stop")

    def emit(self, event: str, **fields) -> dict:
        if event in self.STAMPED and not fields.get("recovered"):
            fields.setdefault("runqueue(s)", run_delay())
        return super().emit(event, **fields)


def run_delay() -> float | None:
    """Seconds this thread has spent runnable but waiting for a CPU (None where the kernel does not say)."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def rank_dir(run_dir: Path) -> RunDir:
    return RunDir(Path(run_dir).resolve())
