"""Why a run did not complete, in one line, from what it left behind. Cheap: no pandas, no torch.

torchrun names the first rank that failed ("Root Cause (first observed failure)"): when that rank
logged its own error (run_stop with its exception) the reason is that error, else (a rank killed by a
signal logs nothing) it is what torchrun saw. The other ranks' errors are symptoms (a peer's connection
closed) and come only when there is no root cause. Last, the job wrapper's exit record.
"""

from __future__ import annotations

import re

from . import events
from .runs import RunDir, read_json

_ROOT_CAUSE = re.compile(
    r"Root Cause \(first observed failure\):\s*\[\d+\]:\s*"
    r"time\s*:[^\n]*\n\s*host\s*:\s*(?P<host>\S+)\s*\n\s*rank\s*:\s*(?P<rank>\d+)[^\n]*\n"
    r"\s*exitcode\s*:\s*(?P<code>-?\d+)[^\n]*\n(?:\s*error_file[^\n]*\n)?\s*traceback\s*:\s*(?P<tb>[^\n]*)",
)


def failed_rank(events_by_rank: dict[int, list[dict]], only: int | None = None) -> str | None:
    """The lowest rank (or rank `only`) whose events say it failed, with its error."""
    for rank in sorted(events_by_rank):
        if only is not None and rank != only:
            continue
        for ev in events_by_rank[rank]:
            if ev.get("event") == "run_stop" and ev.get("status") == "failed":
                return f"rank {rank}: {ev.get('error', 'failed')}"
    return None


def root_cause(run: RunDir) -> tuple[int, str] | None:
    """The rank torchrun saw fail first, and what it saw, from the job log."""
    try:
        text = run.job_log.read_text(errors="replace")
    except OSError:
        return None
    found = list(_ROOT_CAUSE.finditer(text))
    if not found:
        return None
    m = found[-1]
    return int(m["rank"]), f"rank {m['rank']} died on {m['host']} (exit code {m['code']}): {m['tb'].strip()}"


_MPIRUN_SIGNAL = re.compile(r"mpirun noticed that process rank (\d+) with PID \d+ on node \S+ exited on signal (\d+)")


def launcher_death(run: RunDir) -> tuple[int, int] | None:
    """The rank the launcher saw end first, and its exit code (negative: the signal that killed it), from
    torchrun's root cause or mpirun's notice in the job log."""
    try:
        text = run.job_log.read_text(errors="replace")
    except OSError:
        return None
    if found := list(_ROOT_CAUSE.finditer(text)):
        return int(found[-1]["rank"]), int(found[-1]["code"])
    if found := list(_MPIRUN_SIGNAL.finditer(text)):
        return int(found[-1][1]), -int(found[-1][2])
    return None


_STUB = "To enable traceback see"  # what torchrun says of a worker that died before @record could help
_SETUP = re.compile(r"job\.sh: line (\d+): (.+)$")
# a worker's own last words on stderr, before its rank log opened (import, CUDA or NCCL init, rendezvous)
_EARLY = re.compile(
    r"((?:[A-Za-z_][\w.]*(?:Error|Exception)\b(?<!ChildFailedError))(?::.*)?$|No module named \S+.*$|"
    r"NCCL (?:error|WARN).*$)"
)


def setup_failure(text: str) -> str | None:
    """The job script's own failing line ('job.sh line 15: module: command not found'), if bash said one."""
    for line in reversed(text.splitlines()):
        if m := _SETUP.search(line):
            return f"job.sh line {m[1]}: {m[2].strip()}"[:300]
    return None


def early_error(text: str) -> str | None:
    """The last error a process printed before its rank log could say anything."""
    for line in reversed(text.splitlines()):
        if "torch/distributed/elastic" in line or line.lstrip().startswith(("raise ", "File ")):
            continue
        if m := _EARLY.search(line.strip()):
            return m[1].strip()[:300]
    return None


def reason(run: RunDir, events_by_rank: dict[int, list[dict]] | None = None) -> str | None:
    """One line on why the run failed, or None if nothing says so."""
    if events_by_rank is None:
        events_by_rank, _ = events.read_run(run)
    cause = root_cause(run)
    text = run.job_log.read_text(errors="replace") if run.job_log.exists() else ""
    if cause is not None:
        found = failed_rank(events_by_rank, only=cause[0])
        if found is None and _STUB in cause[1]:  # torchrun's stub: the worker's own words are in the log
            early = early_error(text)
            return cause[1].split(": ", 1)[0] + f": {early}" if early else cause[1]
        return found or cause[1]
    found = failed_rank(events_by_rank) or setup_failure(text)
    if found:
        return found
    ended = read_json(run.exit)
    if isinstance(ended, dict) and ended.get("state") not in (None, "COMPLETED"):
        signals = f", signals {', '.join(ended['signals'])}" if ended.get("signals") else ""
        return f"job script ended {ended['state']} with status {ended.get('returncode')}{signals}"
    return None


# ----------------------------------------------------------------------------------------------------------
# failure classes, each with the log line that shows it

CATEGORIES = (
    "time limit",
    "cancelled",
    "preempted",
    "out of memory",
    "rendezvous or collective timeout",
    "a rank died",
    "bad input",
    "software environment",
    "unknown",
)

# strong evidence first: what SLURM or the kernel says ended the job
_SCHEDULER = [
    ("time limit", re.compile(r"DUE TO TIME LIMIT")),
    ("preempted", re.compile(r"DUE TO PREEMPTION")),
    ("out of memory", re.compile(r"CUDA out of memory|OutOfMemoryError|oom[-_ ]kill|Out Of Memory", re.IGNORECASE)),
]
# then, when no rank died from a signal, what the ranks logged
_SYMPTOMS = [
    (
        "rendezvous or collective timeout",
        re.compile(
            r"RendezvousTimeoutError|RendezvousConnectionError|DistStoreError|collective operation timeout|"
            r"Watchdog caught|Timed out (waiting|after)"
        ),
    ),
    (
        "software environment",
        re.compile(r"job\.sh: line \d+: |No module named|ImportError|ModuleNotFoundError|command not found|NCCL error"),
    ),
    ("bad input", re.compile(r"DataError|not found under|error: argument|No such file or directory")),
]


def _log_lines(run: RunDir) -> list[str]:
    lines: list[str] = []
    for path in [run.job_log, *run.rank_logs(), *sorted(run.submitit.glob("*_log.out"))]:
        try:
            lines += path.read_text(errors="replace").splitlines()
        except OSError:
            continue
    return lines


def _first(lines: list[str], patterns) -> tuple[str, str] | None:
    for category, pattern in patterns:
        for line in lines:
            if pattern.search(line):
                return category, line.strip()[:300]
    return None


def classify(
    run: RunDir, state: str | None, events_by_rank: dict[int, list[dict]] | None = None
) -> tuple[str, str | None]:
    """The class of a run that did not complete, and the line that shows it (one of CATEGORIES)."""
    if state == "CANCELLED" or run.cancel.exists():
        return (
            "cancelled",
            f"{run.cancel.name}: cancelled by hpcdl cancel" if run.cancel.exists() else "SLURM state CANCELLED",
        )
    by_state = {"TIMEOUT": "time limit", "PREEMPTED": "preempted", "OUT_OF_MEMORY": "out of memory"}
    if state in by_state:
        return by_state[state], f"SLURM state {state}"
    lines = _log_lines(run)
    found = _first(lines, _SCHEDULER)
    if found:
        return found
    cause = root_cause(run)
    if cause is not None and re.search(r"exit code -\d+|Signal \d+", cause[1]):
        return "a rank died", cause[1]  # the other ranks' timeouts and closed connections are its symptoms
    found = _first(lines, _SYMPTOMS)
    if found:
        return found
    if events_by_rank is None:
        events_by_rank, _ = events.read_run(run)
    return "unknown", failed_rank(events_by_rank) or (cause[1] if cause else None)
