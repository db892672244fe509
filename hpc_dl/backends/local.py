"""This machine, through submitit's LocalExecutor: a detached controller runs the job script."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import devices
from ..devices import assign
from ..errors import SpecError
from ..node.jobscript import run_script, run_sequence
from ..runs import RunDir, read_json
from ..spec import JobSpec
from ..states import WRAPPER_STATES, State
from .base import ArrayHow, Backend

if TYPE_CHECKING:
    from ..profiles import Partition
    from ..render import Rendered


@functools.lru_cache(maxsize=1)
def _detached_local_executor():
    """submitit's LocalExecutor whose controller is detached from the submitting terminal.

    The controller must not hold the caller's stdout (a pipe would stay open until the job ends) nor
    share its process group (Ctrl-C in the terminal must not kill the job): like a batch job.
    """
    import submitit
    from submitit.local import local as sl

    class DetachedLocalExecutor(submitit.LocalExecutor):
        visible: str | None = None  # CUDA_VISIBLE_DEVICES for the job (hpc_dl.devices.assign)

        def _submit_command(self, command: str):
            env = dict(os.environ)
            env.update(
                SUBMITIT_LOCAL_NTASKS="1",
                SUBMITIT_LOCAL_COMMAND=command,
                SUBMITIT_LOCAL_TIMEOUT_S=str(int(60 * self.parameters["timeout_min"])),
                SUBMITIT_LOCAL_SIGNAL_DELAY_S="30",
                SUBMITIT_LOCAL_NODEID="0",
                SUBMITIT_LOCAL_JOB_NUM_NODES="1",
                SUBMITIT_STDERR_TO_STDOUT="1",
                SUBMITIT_EXECUTOR="local",
                SUBMITIT_LOCAL_WITH_SHELL="",
            )
            if self.visible is not None:  # the first GPUs of the set the user allows; never more
                env["CUDA_VISIBLE_DEVICES"] = self.visible
            with open(os.devnull, "rb") as devnull_in, open(self.folder / "controller.log", "ab") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "submitit.local._local", str(self.folder)],
                    env=env,
                    stdin=devnull_in,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            return sl.LocalJob(folder=self.folder, job_id=str(process.pid), process=process, tasks=[0])

    return DetachedLocalExecutor


class LocalBackend(Backend):
    """This machine. A job's state is its exit record, or whether its controller process still runs."""

    name = "local"
    cheap_queries = True
    on_this_machine = True
    collects_in_array = True
    # what this backend can report: the wrapper's exit record, or the controller process alive or gone
    STATES = {
        **{s.value: s for s in WRAPPER_STATES},
        "PENDING": State.PENDING,
        "RUNNING": State.RUNNING,
        "LOST": State.LOST,
    }

    def check(self, spec: JobSpec, part: Partition, profile: str) -> None:
        """One node, and GPUs where the job asks for them: no more than this machine lets hpcdl use."""
        if spec.nodes > 1:
            raise SpecError(
                f"invalid nodes: {spec.nodes} (profile {profile!r} runs on this machine only: use --nodes 1, "
                "or a SLURM profile for more)"
            )
        visible = devices.visible_gpus()
        if spec.device == "gpu" and not visible:
            raise SpecError("invalid device: 'gpu' (this machine has no visible GPU; use --device cpu)")
        if visible and spec.device != "cpu" and spec.gpus > len(visible):
            raise SpecError(
                f"invalid gpus: {spec.gpus} (this machine has {devices.describe(visible)}: use --gpus "
                f"{len(visible)}, or --device cpu for {spec.gpus} CPU worker processes)"
            )

    def has_gpus(self, part: Partition, device: str) -> bool:
        return device != "cpu" and bool(devices.visible_gpus())

    def parameters(self, spec: JobSpec) -> dict[str, Any]:
        return {"tasks_per_node": 1, "timeout_min": spec.time_limit, "gpus_per_node": spec.gpus}

    def request(self, sbatch: dict[str, str], parameters: dict[str, Any]) -> dict[str, Any]:
        return dict(parameters)

    def submit(self, run: RunDir, spec: JobSpec, rendered: Rendered) -> str:
        executor = _detached_local_executor()(folder=run.submitit)
        executor.visible = assign(spec.gpus, spec.device)
        executor.update_parameters(**rendered.parameters)
        return str(executor.submit(run_script, str(run.path)).job_id)

    def submit_array(self, runs: list[RunDir], big: JobSpec, sbatch: dict[str, str], how: ArrayHow) -> list[str]:
        """One local job that runs the points in turn (or how.parallel at a time), then collects."""
        how.folder.mkdir(exist_ok=True)
        executor = _detached_local_executor()(folder=how.folder)
        executor.visible = assign(big.gpus, big.device)
        total = sum((r.read_spec() or JobSpec()).time_limit for r in runs)
        executor.update_parameters(tasks_per_node=1, gpus_per_node=big.gpus, timeout_min=total + 5)
        out = None if how.collect_into is None else str(how.collect_into)
        job = executor.submit(run_sequence, [str(r.path) for r in runs], str(how.study_dir), out, how.parallel)
        return [str(job.job_id)] * len(runs)

    def states(self, runs: list[tuple[RunDir, dict]]) -> list[State]:
        return [State.of(self._state(run, sub), self.STATES) for run, sub in runs]

    @staticmethod
    def _state(run: RunDir, sub: dict) -> str:
        ended = read_json(run.exit)
        if ended:
            return ended["state"]
        if local_job_alive(sub["job_id"]):
            # a point of a local sweep waits for the points before it
            return "RUNNING" if run.job_log.exists() or "array" not in sub else "PENDING"
        # the job may have written its exit record and ended between the two looks: read it once more
        ended = read_json(run.exit)
        if ended:
            return ended["state"]
        return "CANCELLED" if run.cancel.exists() else "LOST"

    def job_state(self, job_id: str) -> State:
        return State.RUNNING if local_job_alive(job_id) else State.COMPLETED

    def cancel(self, run: RunDir, sub: dict) -> None:
        if local_job_alive(sub["job_id"]):
            os.kill(int(sub["job_id"]), signal.SIGTERM)  # the controller forwards it to run_script, and on


def local_job_alive(job_id: str) -> bool:
    """Whether a local job's controller (submitit.local._local) is still running."""
    try:
        cmdline = Path(f"/proc/{int(job_id)}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return False
    return b"submitit.local._local" in cmdline
