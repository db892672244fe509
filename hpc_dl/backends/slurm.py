"""SLURM through submitit's SlurmExecutor (use_srun=False: the rendered script owns the launch), and the
scheduler queries, made in bulk.

A status over many runs asks the scheduler at most three times in all (one sacct, one squeue, one
scontrol), whatever the number of runs, and all three share one deadline (HPCDL_QUERY_TIMEOUT, 10 s):
`hpcdl status` never hangs, also when accounting is down. Answers are kept for a few seconds, so
a wait loop and the triage after it do not ask again.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecError, SubmitError
from ..jobscript import collect_study, run_script
from ..runs import RunDir, read_json
from ..spec import JobSpec
from ..states import State
from .base import Backend

if TYPE_CHECKING:
    from ..profiles import Partition
    from ..render import Rendered

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


# Every state sacct and squeue can print (`sacct --helpstate`, squeue's JOB STATE CODES) in the one model;
# a name that is a State already maps to it (tests/test_states.py asks the real SLURM for its list)
SLURM_STATES = {
    **{s.value: s for s in State if s not in (State.NOT_SUBMITTED, State.LOST, State.TERMINATED, State.STOPPED)},
    "STOPPED": State.SUSPENDED,  # SIGSTOP'd, allocation kept: not the wrapper's STOPPED
    "SIGNALING": State.RUNNING,
    "STAGE_OUT": State.COMPLETING,
    "SPECIAL_EXIT": State.FAILED,
    "REVOKED": State.CANCELLED,
    "RESV_DEL_HOLD": State.PENDING,
}


class SlurmBackend(Backend):
    name = "slurm"
    STATES = SLURM_STATES
    advises_partitions = True

    def check(self, spec: JobSpec, part: Partition, profile: str) -> None:
        if spec.device == "gpu" and part.gpus_per_node == 0:
            raise SpecError(f"invalid device: 'gpu' (partition {part.name!r} has no GPUs)")

    def scheduler_options(self, spec: JobSpec, part: Partition, warning_s: int) -> dict[str, str]:
        """The partition, the GPUs as gres, and the warning before the time limit to the batch shell
        (which is run_script: checkpoint, requeue)."""
        opts = {"partition": part.name, "signal": f"B:USR1@{warning_s}"}
        if part.gpus_per_node > 0:
            gpu_type = spec.gpu_type or part.default_gpu_type
            opts["gres"] = f"gpu:{gpu_type}:{spec.gpus}" if gpu_type else f"gpu:{spec.gpus}"
        return opts

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

    @staticmethod
    def _sbatch_failed(exc: subprocess.CalledProcessError) -> SubmitError:
        detail = (exc.stderr or exc.output or b"").decode(errors="replace").strip().splitlines()
        return SubmitError(f"sbatch refused the job: {detail[-1] if detail else exc}")

    def submit(self, run: RunDir, spec: JobSpec, rendered: Rendered) -> str:
        executor = self._executor(run.submitit, rendered.sbatch, spec.time_limit)
        try:
            return str(executor.submit(run_script, str(run.path)).job_id)
        except subprocess.CalledProcessError as exc:
            raise self._sbatch_failed(exc) from None

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
        folder = study_dir / ".submitit"
        executor = self._executor(folder, sbatch, big.time_limit, array_parallelism=throttle)
        try:
            jobs = executor.map_array(run_script, [str(r.path) for r in runs])
            ids = [str(j.job_id) for j in jobs]
            if out is None:
                return ids, None
            parent = ids[0].split("_")[0]
            # a small job for collect: one task, one CPU, on the array's partition and account
            small = {k: v for k, v in sbatch.items() if k not in ("nodes", "ntasks-per-node", "cpus-per-task", "gres")}
            small.update({"job-name": f"{sbatch['job-name']}-collect", "dependency": f"afterany:{parent}"})
            collect = self._executor(folder, small, 30, nodes=1, ntasks_per_node=1, cpus_per_task=1)
            cjob = collect.submit(collect_study, str(study_dir), str(out))
            return ids, str(cjob.job_id)
        except subprocess.CalledProcessError as exc:
            raise self._sbatch_failed(exc) from None

    def states(self, runs: list[tuple[RunDir, dict]]) -> list[State]:
        known = query_states([sub["job_id"] for _run, sub in runs])
        return [self._state(run, known.get(sub["job_id"])) for run, sub in runs]

    @staticmethod
    def _state(run: RunDir, answer: str | None) -> State:
        """The scheduler's answer in the one model, with the run's exit record where that says more."""
        state = State.of(answer, SLURM_STATES) if answer is not None else None
        ended = (read_json(run.exit) or {}) if run.exit.exists() else {}
        record = State.of(ended["state"]) if ended.get("state") else None
        if record is State.COMPLETED or state is None:  # a COMPLETED record is final
            return record or (State.CANCELLED if run.cancel.exists() else State.UNKNOWN)
        if state is State.PENDING and run.cancel.exists():  # scancel ends a pending job at once; accounting
            return State.CANCELLED  # may keep a never-started array task's PENDING record
        if state is State.FAILED and record is not None and record.is_terminal:
            return record  # the wrapper knows more than "failed": TERMINATED by a signal, STOPPED on request
        return state

    def job_state(self, job_id: str) -> State:
        return State.of(query_states([job_id]).get(job_id), SLURM_STATES)

    def cancel(self, run: RunDir, sub: dict) -> None:
        subprocess.run(["scancel", sub["job_id"]], check=True, timeout=30, capture_output=True)
        _cache.pop(sub["job_id"], None)  # what was cached before the cancel is stale now


# ----------------------------------------------------------------------------------------------------------
# scheduler queries

CACHE_S = 3.0  # how long an answer is reused
_cache: dict[str, tuple[float, str]] = {}
CALLS = {"n": 0}  # scheduler commands run by this process (bench/bench_slurm.py reads it)


def query_timeout() -> float:
    return float(os.environ.get("HPCDL_QUERY_TIMEOUT", "10"))


def query_states(job_ids: list[str]) -> dict[str, str]:
    """The state of every job id (array tasks as <array id>_<index>) that the scheduler can tell.

    sacct first (one call for all ids), then squeue for those it did not know (one call), then one
    `scontrol show job` for the rest; all under one deadline. Ids no query knows are left out.
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


def _scontrol(job_ids: list[str], deadline: float) -> dict[str, str] | None:
    out = _run(["scontrol", "show", "job", "-o"], deadline)
    if out is None:
        return None
    found = {}
    for line in (out or "").splitlines():
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
