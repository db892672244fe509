"""SLURM's answers about jobs, asked in bulk and cached (the SLURM backend's state reading, like submitit's
SlurmInfoWatcher).

A status over many runs asks one sacct and one squeue for all of them, whatever their number; only for
the jobs neither knows, `scontrol show job` is asked about each of those jobs (an array's id covers all
its tasks; scontrol takes one id a call), a few at a time. All share one deadline (HPCDL_QUERY_TIMEOUT,
10 s): `hpcdl status` never hangs, also when accounting is down. Answers are kept for a few seconds, so
a wait loop and the triage after it do not ask again.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

CACHE_S = 3.0  # how long an answer is reused
_cache: dict[str, tuple[float, str]] = {}
CALLS = {"n": 0}  # scheduler commands run by this process (bench/bench_slurm.py reads it)
_calls_lock = threading.Lock()


def query_timeout() -> float:
    return float(os.environ.get("HPCDL_QUERY_TIMEOUT", "10"))


def query_states(job_ids: list[str]) -> dict[str, str]:
    """The state of every job id (array tasks as <array id>_<index>) that the scheduler can tell.

    sacct first (one call for all ids), then squeue for those it did not know (one call), then
    `scontrol show job` about each job still unknown (_scontrol); all under one deadline. Ids no query
    knows are left out.
    """
    now = time.monotonic()
    wanted = [j for j in dict.fromkeys(job_ids) if not (j in _cache and now - _cache[j][0] < CACHE_S)]
    deadline = now + query_timeout()
    found: dict[str, str] = {}
    pending: dict[str, str] = {}  # accounting's PENDING: stale for a never-started array task cancelled since
    controller = False  # whether squeue or scontrol answered
    # sacct (slurmdbd) may hang when accounting is down: it gets half the time, so squeue and scontrol
    # (slurmctld) still answer within the one timeout
    for ask, share in ((_sacct, 0.5), (_squeue, 0.8), (_scontrol, 1.0)):
        missing = [j for j in wanted if j not in found]
        left = deadline - time.monotonic()
        if not missing or left <= 0:
            break
        answer = ask(missing, time.monotonic() + share * left)
        if answer is None:
            continue
        if ask is _sacct:
            pending = {j: s for j, s in answer.items() if s == "PENDING"}
            answer = {j: s for j, s in answer.items() if s != "PENDING"}  # the controller knows better
        else:
            controller = True
        found.update({j: s for j, s in answer.items() if j in missing})
    if not controller:
        found.update({j: s for j, s in pending.items() if j not in found})
    stamp = time.monotonic()
    _cache.update({j: (stamp, s) for j, s in found.items()})
    return {j: _cache[j][1] for j in job_ids if j in _cache}


def run_command(argv: list[str], deadline: float) -> str | None:
    """A scheduler command's stdout, or None if it is missing, fails or does not answer by the deadline."""
    with _calls_lock:
        CALLS["n"] += 1
    try:
        out = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=max(0.1, deadline - time.monotonic()),
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _parents(job_ids: list[str]) -> str:
    """The ids to ask about: an array task's array id covers all its tasks."""
    return ",".join(dict.fromkeys(j.split("_")[0] for j in job_ids))


def _sacct(job_ids: list[str], deadline: float) -> dict[str, str] | None:
    out = run_command(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", _parents(job_ids)], deadline)
    return _pairs(out, "|")


def _squeue(job_ids: list[str], deadline: float) -> dict[str, str] | None:
    out = run_command(["squeue", "-h", "-r", "-o", "%i|%T", "-j", _parents(job_ids)], deadline)
    return _pairs(out, "|")


SCONTROL_AT_ONCE = 4  # `scontrol show job` calls in flight together


def _scontrol(job_ids: list[str], deadline: float) -> dict[str, str] | None:
    """`scontrol show job -o ID` for each of our jobs (never the whole cluster's list): scontrol takes one
    id a call (22.05 refuses '1,2' and '1 2'), and an array's id answers for all its tasks."""
    parents = list(dict.fromkeys(j.split("_")[0] for j in job_ids))

    def ask(job_id: str) -> str | None:
        if time.monotonic() >= deadline:
            return None
        return run_command(["scontrol", "show", "job", "-o", job_id], deadline)

    with ThreadPoolExecutor(max_workers=min(SCONTROL_AT_ONCE, len(parents))) as pool:
        outs = [out for out in pool.map(ask, parents) if out is not None]
    if not outs:
        return None
    found = {}
    for line in "\n".join(outs).splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        jid, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        if jid and task and task != "N/A":
            key = f"{jid}_{task}" if task.isdigit() else f"{jid}_[{task}]"  # a pending range: 2-5%4
        else:
            key = fields.get("JobId")
        for one in _expand(key or ""):
            found[one] = fields.get("JobState", "UNKNOWN")
    return found


def _pairs(out: str | None, sep: str) -> dict[str, str] | None:
    """'<id>|<state>' lines -> {id: state}; a pending range 123_[2-5%4] gives every task in it. None: the
    command did not answer."""
    if out is None:
        return None
    found = {}
    for line in (out or "").splitlines():
        jid, _, state = line.strip().partition(sep)
        if jid and state:
            for one in _expand(jid):
                found.setdefault(one, state.split()[0].rstrip("+"))
    return found


_RANGE = re.compile(r"^(\d+)_\[([0-9,\-]+)(?:%\d+)?\]$")


def _expand(job_id: str) -> list[str]:
    m = _RANGE.match(job_id)
    if not m:
        return [job_id] if job_id else []
    tasks = []
    for part in m[2].split(","):
        lo, _, hi = part.partition("-")
        tasks += range(int(lo), int(hi or lo) + 1)
    return [f"{m[1]}_{t}" for t in tasks]
