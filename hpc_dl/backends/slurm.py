"""SLURM through submitit's SlurmExecutor (use_srun=False: the rendered script owns the launch), and the
scheduler queries, made in bulk.

A status over many runs asks one sacct and one squeue for all of them, whatever their number; only for
the jobs neither knows, `scontrol show job` is asked about each of those jobs (an array's id covers all
its tasks; scontrol takes one id a call), a few at a time. All share one deadline (HPCDL_QUERY_TIMEOUT,
10 s): `hpcdl status` never hangs, also when accounting is down. Answers are kept for a few seconds, so
a wait loop and the triage after it do not ask again.

sbatch is tried again, with backoff and jitter, when a busy controller fails it for a transient reason
(TRANSIENT); a real refusal fails at once. A sweep larger than the cluster's MaxArraySize becomes
several arrays, one after another, with the collect job after all of them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..errors import HpcdlError, SubmitError
from ..jobscript import collect_study, run_script
from ..render import Rendered
from ..runs import RunDir, StudyDir, read_json
from ..spec import JobSpec
from .base import Backend

# submitit's parameter names for the SLURM options it knows; the rest go in additional_parameters
KNOWN = {
    "job-name": "job_name",
    "partition": "partition",
    "nodes": "nodes",
    "ntasks-per-node": "ntasks_per_node",
    "cpus-per-task": "cpus_per_task",
    "gres": "gres",
}


@functools.lru_cache(maxsize=1)
def _exec_executor():
    """submitit's SlurmExecutor whose batch script `exec`s python: SLURM's warning signal
    (--signal=B:USR1@N goes to the batch shell) then reaches hpc_dl.jobscript.run_script itself."""
    import submitit

    class ExecSlurmExecutor(submitit.SlurmExecutor):
        @property
        def _submitit_command_str(self) -> str:  # used for single jobs and for arrays alike
            return "exec " + super()._submitit_command_str

    return ExecSlurmExecutor


class SlurmBackend(Backend):
    name = "slurm"

    def _executor(self, folder: Path, sbatch: dict[str, str], time_min: int, **more: Any):

        params: dict[str, Any] = {"time": time_min, "use_srun": False, "stderr_to_stdout": True, **more}
        extra: dict[str, str] = {}
        for key, value in sbatch.items():
            if key == "time":
                continue
            if key in KNOWN:
                params[KNOWN[key]] = int(value) if value.isdigit() else value
            else:
                extra[key] = value
        if extra:
            params["additional_parameters"] = extra
        executor = _exec_executor()(folder=folder, python=shlex.quote(sys.executable))
        executor.update_parameters(**params)
        return executor

    def submit(self, run: RunDir, spec: JobSpec, rendered: Rendered) -> str:
        executor = self._executor(run.submitit, rendered.sbatch, spec.time_limit)
        return str(sbatch_retried(lambda: executor.submit(run_script, str(run.path))).job_id)

    def submit_sweep(
        self,
        runs: list[RunDir],
        big: JobSpec,
        sbatch: dict[str, str],
        throttle: int,
        study_dir: Path,
        out: Path | None,
        parallel: int = 1,
    ) -> tuple[list[str], str | None]:
        folder = StudyDir(study_dir).submitit
        ids: list[str] = []
        arrays: list[str] = []  # one after another: the throttle holds for the whole sweep
        try:
            for chunk in array_chunks(runs, max_array_size()):
                options = depend(sbatch, f"afterany:{arrays[-1]}") if arrays else sbatch
                executor = self._executor(folder, options, big.time_limit, array_parallelism=throttle)
                jobs = sbatch_retried(lambda ex=executor, c=chunk: ex.map_array(run_script, [str(r.path) for r in c]))
                ids += [str(j.job_id) for j in jobs]
                arrays.append(ids[-1].split("_")[0])
            if out is None:
                return ids, None
            # a small job for collect: one task, one CPU, on the array's partition and account, after every array
            small = {k: v for k, v in sbatch.items() if k not in ("nodes", "ntasks-per-node", "cpus-per-task", "gres")}
            small.update({"job-name": f"{sbatch['job-name']}-collect", "dependency": "afterany:" + ":".join(arrays)})
            collect = self._executor(folder, small, 30, nodes=1, ntasks_per_node=1, cpus_per_task=1)
            return ids, str(sbatch_retried(lambda: collect.submit(collect_study, str(study_dir), str(out))).job_id)
        except BaseException:
            if arrays:  # the arrays queued before the failure must not run in folders that go away
                subprocess.run(["scancel", *arrays], timeout=30, capture_output=True)
            raise

    def states(self, runs: list[tuple[RunDir, dict]]) -> list[str]:
        known = query_states([sub["job_id"] for _run, sub in runs])
        out = []
        for run, sub in runs:
            state = known.get(sub["job_id"])
            ended = (read_json(run.exit) or {}) if run.exit.exists() else {}
            if ended.get("state") == "COMPLETED" or state is None:  # a COMPLETED record is final
                state = ended.get("state") or ("CANCELLED" if run.cancel.exists() else "UNKNOWN")
            elif state == "PENDING" and run.cancel.exists():  # scancel ends a pending job at once; accounting
                state = "CANCELLED"  # may keep a never-started array task's PENDING record
            out.append(state)
        return out

    def job_state(self, job_id: str) -> str:
        return query_states([job_id]).get(job_id, "UNKNOWN")

    def cancel(self, run: RunDir, sub: dict) -> None:
        subprocess.run(["scancel", sub["job_id"]], check=True, timeout=30, capture_output=True)
        _cache.pop(sub["job_id"], None)  # what was cached before the cancel is stale now

    def cancel_all(self, runs: list[tuple[RunDir, dict]], jobs: list[str]) -> None:
        """One scancel for all of them; a job that ended meanwhile is no error."""
        ids = list(dict.fromkeys([sub["job_id"] for _run, sub in runs] + list(jobs)))
        if not ids:
            return
        out = subprocess.run(["scancel", *ids], timeout=30, capture_output=True, text=True)
        for job_id in ids:
            _cache.pop(job_id, None)
        ended = ("already completing or completed", "invalid job id")
        errors = [x for x in out.stderr.splitlines() if x.strip() and not any(e in x.lower() for e in ended)]
        if out.returncode and errors:
            raise HpcdlError(f"scancel failed: {errors[-1].strip()}")


# ----------------------------------------------------------------------------------------------------------
# submitting: sbatch tried again on a busy controller's transient errors; sweeps cut to MaxArraySize

# what sbatch says when the controller is busy or briefly away: worth another try (lower case)
TRANSIENT = (
    "socket timed out",
    "resource temporarily unavailable",
    "unable to contact slurm controller",
    "temporarily unable to accept job",
    "zero bytes were transmitted or received",
    "connection refused",
)
SBATCH_TRIES = 5
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's own default, when `scontrol show config` does not answer
T = TypeVar("T")


def sbatch_retry_s() -> float:
    """The first pause before sbatch is tried again (HPCDL_SBATCH_RETRY_S, default 2 s); it doubles, with
    as much jitter, each time."""
    return float(os.environ.get("HPCDL_SBATCH_RETRY_S", "2"))


def _sbatch_text(exc: BaseException) -> str:
    """What sbatch said on stderr (submitit raises FailedJobError(stderr) from the CalledProcessError)."""
    for e in (exc, exc.__cause__):
        if isinstance(e, subprocess.CalledProcessError) and (e.stderr or e.output):
            out = e.stderr or e.output
            return (out.decode(errors="replace") if isinstance(out, bytes) else str(out)).strip()
    return str(exc).strip()


def _sbatch_error(exc: BaseException) -> bool:
    from submitit.core.utils import FailedJobError

    return isinstance(exc, FailedJobError | subprocess.CalledProcessError)


def is_transient(exc: BaseException) -> bool:
    """Whether sbatch failed for a reason that passes (a busy controller), not a refusal of the job."""
    return _sbatch_error(exc) and any(t in _sbatch_text(exc).lower() for t in TRANSIENT)


def _last_line(exc: BaseException) -> str:
    lines = _sbatch_text(exc).splitlines()
    return lines[-1].strip() if lines else type(exc).__name__


def _quiet(call: Callable[[], T]) -> T:
    with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's stderr; we say it in one line
        return call()


def sbatch_retried(call: Callable[[], T]) -> T:
    """`call` (a submitit submission, which runs sbatch), tried again with backoff and jitter while sbatch
    fails for a transient reason, at most SBATCH_TRIES times; any other failure is a SubmitError at once."""
    import tenacity

    base = sbatch_retry_s()

    def say(state: tenacity.RetryCallState) -> None:
        print(
            f"[hpcdl] sbatch failed ({_last_line(state.outcome.exception())}); trying again in "
            f"{state.next_action.sleep:.1f} s (attempt {state.attempt_number + 1} of {SBATCH_TRIES})",
            file=sys.stderr,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(SBATCH_TRIES),
        wait=tenacity.wait_exponential(multiplier=base, max=30 * base) + tenacity.wait_random(0, base),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=say,
        reraise=True,
    )
    try:
        return retrying(_quiet, call)
    except Exception as exc:
        if not _sbatch_error(exc):
            raise
        if is_transient(exc):
            raise SubmitError(
                f"sbatch failed {SBATCH_TRIES} times ({_last_line(exc)}): the controller is busy, try again later"
            ) from None
        raise SubmitError(f"sbatch refused the job: {_last_line(exc)}") from None


def max_array_size() -> int:
    """The cluster's MaxArraySize (array indices go from 0 to MaxArraySize - 1), asked once per submission."""
    out = _run(["scontrol", "show", "config"], time.monotonic() + query_timeout())
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out or "", re.MULTILINE)
    return int(m[1]) if m else DEFAULT_MAX_ARRAY_SIZE


def array_chunks(items: list[T], size: int) -> list[list[T]]:
    """A sweep's runs cut into arrays of at most `size` tasks (their indices 0 .. size - 1), in order."""
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]


def depend(sbatch: dict[str, str], dependency: str) -> dict[str, str]:
    """The options with one more dependency (SLURM: ',' means all of them)."""
    mine = sbatch.get("dependency")
    return {**sbatch, "dependency": f"{mine},{dependency}" if mine else dependency}


# ----------------------------------------------------------------------------------------------------------
# scheduler queries

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


def _run(argv: list[str], deadline: float) -> str | None:
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
    out = _run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", _parents(job_ids)], deadline)
    return _pairs(out, "|")


def _squeue(job_ids: list[str], deadline: float) -> dict[str, str] | None:
    out = _run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", _parents(job_ids)], deadline)
    return _pairs(out, "|")


SCONTROL_AT_ONCE = 4  # `scontrol show job` calls in flight together


def _scontrol(job_ids: list[str], deadline: float) -> dict[str, str] | None:
    """`scontrol show job -o ID` for each of our jobs (never the whole cluster's list): scontrol takes one
    id a call (22.05 refuses '1,2' and '1 2'), and an array's id answers for all its tasks."""
    parents = list(dict.fromkeys(j.split("_")[0] for j in job_ids))

    def ask(job_id: str) -> str | None:
        if time.monotonic() >= deadline:
            return None
        return _run(["scontrol", "show", "job", "-o", job_id], deadline)

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
