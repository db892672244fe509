"""SLURM's answers about jobs, asked in bulk and cached (the SLURM backend's state reading, like submitit's
SlurmInfoWatcher).

A status over many runs asks one sacct and one squeue for all of them, whatever their number; only for
the jobs neither knows, `scontrol show job` is asked about each of those jobs (an array's id covers all
its tasks; scontrol takes one id a call), a few at a time. All share one deadline (HPCDL_QUERY_TIMEOUT,
10 s): `hpcdl status` never hangs, also when accounting is down. Answers are kept for a few seconds, so
a wait loop and the triage after it do not ask again.

The same sacct also answers what each job used (`query_usage`, for `status --json` and collect): its
allocation line's Elapsed, AllocCPUS and TotalCPU, and the largest MaxRSS of its steps, whence a
seff-style CPU efficiency, TotalCPU / (Elapsed x AllocCPUS). Where SLURM gathers no accounting
(JobAcctGatherType=jobacct_gather/none) MaxRSS is empty and TotalCPU 0: both are then None.
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
_usage: dict[str, dict] = {}  # what sacct said each job used, from the same calls as _cache
_asked: dict[str, float] = {}  # when each job was last asked about, answered or not
SACCT_FIELDS = "JobID,State,Elapsed,AllocCPUS,TotalCPU,MaxRSS"
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
    _asked.update(dict.fromkeys(wanted, now))
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
    """One sacct for all the jobs: their states (allocation lines) and, kept in _usage, what they used."""
    out = run_command(["sacct", "-n", "-P", "-o", SACCT_FIELDS, "-j", _parents(job_ids)], deadline)
    if out is None:
        return None
    states, usage = parse_sacct(out)
    _usage.update(usage)
    return states


def query_usage(job_ids: list[str]) -> dict[str, dict]:
    """What each job used, as the bulk sacct of query_states said (asked only where no fresh answer is
    cached): {job id: {elapsed_s, alloc_cpus, total_cpu_s, max_rss_mib, cpu_efficiency}}."""
    now = time.monotonic()
    unasked = [j for j in job_ids if now - _asked.get(j, -CACHE_S) >= CACHE_S]
    if unasked:
        query_states(unasked)
    return {j: _usage[j] for j in job_ids if j in _usage}


def parse_sacct(out: str) -> tuple[dict[str, str], dict[str, dict]]:
    """`sacct -n -P -o SACCT_FIELDS` lines -> (states of the allocation lines, usage by job id). A step
    (<id>.batch, <id>.0) gives its MaxRSS to its job."""
    jobs = ("|".join(line.split("|")[:2]) for line in out.splitlines() if "." not in line.split("|")[0])
    states = _pairs("\n".join(jobs), "|") or {}
    usage: dict[str, dict] = {}
    rss: dict[str, float] = {}
    for line in out.splitlines():
        cols = line.strip().split("|")
        if len(cols) < 6 or not cols[0]:
            continue
        jid, step = cols[0].partition(".")[::2]
        mib = rss_mib(cols[5])
        if mib is not None:
            rss[jid] = max(rss.get(jid, 0.0), mib)
        if step or "[" in jid:
            continue
        elapsed, cpus, total = duration_s(cols[2]), _count(cols[3]), duration_s(cols[4])
        total = total or None  # 0: nothing gathered (jobacct_gather/none) or nothing ran yet
        busy = elapsed * cpus if elapsed and cpus else None
        efficiency = round(total / busy, 3) if total and busy else None
        usage[jid] = {"elapsed_s": elapsed, "alloc_cpus": cpus, "total_cpu_s": total, "cpu_efficiency": efficiency}
    for jid, record in usage.items():
        record["max_rss_mib"] = round(rss[jid], 1) if rss.get(jid) else None
    return states, usage


def duration_s(text: str) -> float | None:
    """sacct's [D-][HH:]MM:SS[.mmm] as seconds; None where it is empty or not a time."""
    m = re.fullmatch(r"\s*(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*", text or "")
    if not m:
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return round(((days * 24 + hours) * 60 + minutes) * 60 + seconds, 3)


_RSS_UNITS = {"": 1 / 1024, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}  # sacct's base unit is KiB


def rss_mib(text: str) -> float | None:
    """sacct's MaxRSS (1234K, 12.5M, 2G; a bare number is KiB) in MiB; None where empty."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)([KMGT]?)\s*", text or "")
    return float(m[1]) * _RSS_UNITS[m[2]] if m else None


def _count(text: str) -> int | None:
    return int(text) if (text or "").strip().isdigit() else None


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
