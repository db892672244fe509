"""SLURM's units and option texts as hpcdl reads and writes them: time limits ("MM", "HH:MM:SS",
"D-HH:MM:SS") in minutes, memory ("16G"), sbatch option names, and the options hpcdl derives itself."""

from __future__ import annotations

import re

from .errors import SpecError

SBATCH_KEY = re.compile(r"[a-z][a-z0-9-]*")  # a long sbatch option name, as used in #SBATCH --key=value


# sbatch options hpcdl derives from the spec: --sbatch may not set them (the script and the allocation
# would disagree); each names what to use instead
DERIVED_SBATCH = {
    "nodes": "--nodes",
    "ntasks": "--nodes and --gpus",
    "ntasks-per-node": "--gpus (workers per node)",
    "gres": "--gpus and --gpu-type",
    "gpus": "--gpus",
    "gpus-per-node": "--gpus",
    "gpus-per-task": "--gpus",
    "cpus-per-task": "--cpus-per-task",
    "cpus-per-gpu": "--cpus-per-task",
    "mem": "--mem",
    "mem-per-cpu": "--mem",
    "mem-per-gpu": "--mem",
    "time": "--time",
    "partition": "--partition",
    "job-name": "--job-name",
    "array": "hpcdl sweep",
    "output": "the run folder's job.log (hpcdl sets it)",
    "error": "the run folder's job.log (hpcdl sets it)",
    "signal": "nothing: hpcdl asks for the time-limit warning itself",
    "requeue": "nothing: hpcdl requeues its jobs itself",
    "exclusive": "--exclusive",
}
MEMORY = re.compile(r"^\d+[KMGT]?$")  # --mem: an integer with an optional unit
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
