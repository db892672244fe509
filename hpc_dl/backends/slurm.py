"""SLURM through submitit's SlurmExecutor (use_srun=False: the rendered script owns the launch).

The backend fills the hooks of the one submission flow (hpc_dl/submit.py): a job, an array after an
array, a collect job after the arrays. sbatch is tried again on a busy controller's transient errors
(sbatch.py); states are read in bulk and cached (slurm_query.py) and mapped into the one state model.
"""

from __future__ import annotations

import functools
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import HpcdlError, SpecError
from ..node.jobscript import collect_study, run_script
from ..runs import RunDir, read_json
from ..spec import JobSpec
from ..states import State
from .base import ArrayHow, Backend
from .sbatch import depend, is_transient, max_array_size, sbatch_retried  # noqa: F401  (the module's API)
from .slurm_query import _cache, query_states, query_usage

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
    (--signal=B:USR1@N goes to the batch shell) then reaches hpc_dl.node.jobscript.run_script itself."""
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
    WHOLE_NODES = {"exclusive": ""}  # sbatch --exclusive: the nodes' every core, no other job beside
    FLAGS = frozenset({"exclusive"})

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
            if key in self.FLAGS:  # submitit writes True as a bare #SBATCH --flag
                extra[key] = True
            elif key in KNOWN:
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

    def max_array_size(self) -> int:
        return max_array_size()

    def submit_array(self, runs: list[RunDir], big: JobSpec, sbatch: dict[str, str], how: ArrayHow) -> list[str]:
        """One job array of `big`'s allocation, `how.throttle` tasks at once, after `how.after` if given."""
        options = depend(sbatch, f"afterany:{how.after}") if how.after else sbatch
        executor = self._executor(how.folder, options, big.time_limit, array_parallelism=how.throttle)
        jobs = sbatch_retried(lambda: executor.map_array(run_script, [str(r.path) for r in runs]))
        return [str(j.job_id) for j in jobs]

    def submit_collect(self, after: list[str], sbatch: dict[str, str], folder: Path, study_dir: Path, out: Path) -> str:
        """A small job for collect: one task, one CPU, on the arrays' partition and account, after all of them."""
        allocation = ("nodes", "ntasks-per-node", "cpus-per-task", "gres", *self.WHOLE_NODES)
        small = {k: v for k, v in sbatch.items() if k not in allocation}
        small.update({"job-name": f"{sbatch['job-name']}-collect", "dependency": "afterany:" + ":".join(after)})
        collect = self._executor(folder, small, 30, nodes=1, ntasks_per_node=1, cpus_per_task=1)
        return str(sbatch_retried(lambda: collect.submit(collect_study, str(study_dir), str(out))).job_id)

    def array_of(self, job_id: str) -> str:
        return job_id.split("_")[0]  # <array id>_<task index>

    def states(self, runs: list[tuple[RunDir, dict]]) -> list[State]:
        known = query_states([sub["job_id"] for _run, sub in runs])
        return [self._state(run, known.get(sub["job_id"])) for run, sub in runs]

    def usage(self, runs: list[tuple[RunDir, dict]]) -> list[dict | None]:
        known = query_usage([sub["job_id"] for _run, sub in runs])
        return [known.get(sub["job_id"]) for _run, sub in runs]

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

    def ended(self, run: RunDir) -> State | None:
        """Only a COMPLETED record is final without asking: an attempt ended by SIGTERM may be requeued
        (`scontrol requeue`, a preemption), and its record then says TERMINATED while the job goes on."""
        state = super().ended(run)
        return state if state is State.COMPLETED else None

    def job_state(self, job_id: str) -> State:
        return State.of(query_states([job_id]).get(job_id), SLURM_STATES)

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
