"""Submission, state and cancellation: the only module that imports submitit.

One flow for every backend: render -> make the run directory -> write spec, profile and script ->
hand `run_script` to a submitit executor -> record the job id. A backend fills in a few hooks
(which executor, how to read a job's state, how to cancel it). If anything fails after the run
directory was made, it is removed: a failed submission leaves nothing behind.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .errors import HpcdlError, SubmitError, UsageError
from .profiles import ClusterProfile
from .render import RenderContext, Rendered, render
from .runs import RunDir, new_run_id, read_json, write_atomic, write_json
from .spec import JobSpec

TERMINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "LOST",
}


@dataclass(frozen=True)
class Submission:
    run: RunDir
    job_id: str
    executor: str


def plan(
    spec: JobSpec,
    profile: ClusterProfile,
    runs_root: Path,
    study: str,
    templates: Path | None = None,
    run_id: str | None = None,
) -> tuple[str, Path, Rendered]:
    """Everything a submission would do, computed and checked, with nothing written (the dry run)."""
    run_id = run_id or new_run_id(spec.strategy, spec.nodes, spec.gpus)
    run_path = (Path(runs_root) / study / run_id).resolve()
    ctx = RenderContext(run_dir=run_path, run_id=run_id, python=sys.executable, templates=templates)
    return run_id, run_path, render(spec, profile, ctx)


def _prepare(
    spec: JobSpec, profile: ClusterProfile, runs_root: Path, study: str, templates: Path | None
) -> tuple[RunDir, Rendered]:
    """Render, make the run folder exclusively, write spec, profile and script. Nothing is submitted."""
    from .render import check_requirements

    check_requirements(spec, profile)
    for _ in range(5):
        run_id, _path, rendered = plan(spec, profile, runs_root, study, templates)
        try:
            run = RunDir.create(Path(runs_root), study, run_id)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - five collisions of a time stamp and 32 random bits
        raise SubmitError(f"could not make a new run folder under {runs_root}/{study}")
    try:
        write_json(run.spec, spec.to_dict())
        write_json(run.profile, profile.to_dict())
        write_atomic(run.script, rendered.script)
        run.script.chmod(0o755)
    except BaseException:
        shutil.rmtree(run.path, ignore_errors=True)
        raise
    return run, rendered


def _record(
    run: RunDir, executor: str, job_id: str, profile: ClusterProfile, sbatch: dict, parameters: dict, **extra: Any
) -> None:
    write_json(
        run.submission,
        {
            "executor": executor,
            "job_id": job_id,
            "submitted_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "submit_host": socket.gethostname(),
            "profile": profile.name,
            "sbatch": sbatch,
            "parameters": parameters,
            "hpcdl": __version__,
            **extra,
        },
    )


def _undo(made: list[RunDir], exc: BaseException):
    """A failed submission leaves nothing behind; errors become one line."""
    for run in made:
        shutil.rmtree(run.path, ignore_errors=True)
    if isinstance(exc, HpcdlError) or not isinstance(exc, Exception):
        raise exc
    raise SubmitError(f"submission failed: {_one_line(exc)}") from None


def submit(
    spec: JobSpec, profile: ClusterProfile, runs_root: Path, study: str, templates: Path | None = None
) -> Submission:
    from .runs import check_study

    check_study(study)
    run, rendered = _prepare(spec, profile, runs_root, study, templates)
    try:
        job_id = _backend(profile.scheduler).submit(run, spec, rendered)
        _record(run, rendered.executor, job_id, profile, rendered.sbatch, rendered.parameters)
    except BaseException as exc:
        _undo([run], exc)
    return Submission(run=run, job_id=job_id, executor=rendered.executor)


@dataclass(frozen=True)
class SweepSubmission:
    runs: list[RunDir]
    job_id: str  # the array's job id (SLURM) or the local job that runs the points in turn
    collect_job_id: str | None
    executor: str
    sbatch: dict[str, str]  # the allocation every array task gets
    record: Path


def plan_sweep(points, profile: ClusterProfile) -> dict[str, str]:
    """Check every point against the cluster; return the sbatch options of the array's allocation."""
    from .render import sbatch_options
    from .sweep import largest

    for p in points:
        profile.check(p.spec)
    return sbatch_options(largest(points), profile)


def submit_sweep(
    points,
    profile: ClusterProfile,
    runs_root: Path,
    study: str,
    out: Path | None,
    templates: Path | None = None,
    throttle: int = 4,
    local_parallel: int = 1,
) -> SweepSubmission:
    """Every point in one job array (throttled), and, unless out is None, a collect job chained after it."""
    from .runs import check_study
    from .sweep import largest

    check_study(study)
    if not isinstance(throttle, int) or isinstance(throttle, bool) or throttle < 1:
        raise UsageError(f"invalid throttle: {throttle!r} (must be an integer >= 1)")
    sbatch = plan_sweep(points, profile)
    made: list[RunDir] = []
    try:
        for p in points:
            made.append(_prepare(p.spec, profile, runs_root, study, templates)[0])
        study_dir = made[0].path.parent
        job_ids, collect_id = _backend(profile.scheduler).submit_sweep(
            made,
            largest(points),
            sbatch,
            throttle,
            study_dir,
            None if out is None else Path(out).resolve(),
            local_parallel,
        )
        parent = job_ids[0].split("_")[0]
        for run, jid in zip(made, job_ids, strict=True):
            _record(run, profile.scheduler, jid, profile, sbatch, {}, array=parent, collect_job_id=collect_id)
        record = study_dir / f"sweep-{parent}.json"
        write_json(
            record,
            {
                "executor": profile.scheduler,
                "job_id": parent,
                "collect_job_id": collect_id,
                "throttle": throttle,
                "sbatch": sbatch,
                "out": None if out is None else str(out),
                "runs": [r.run_id for r in made],
            },
        )
    except BaseException as exc:
        _undo(made, exc)
    return SweepSubmission(made, parent, collect_id, profile.scheduler, sbatch, record)


def run_sequence(run_dirs: list[str], study_dir: str, out: str | None, parallel: int = 1) -> int:
    """The local profile's sweep: the points one after another (timings of a scaling study must not
    overlap), or `parallel` at a time (kfold: independent trainings), then collect."""
    from concurrent.futures import ThreadPoolExecutor

    _forward_signals()

    def one(run_dir: str) -> bool:
        if RunDir(Path(run_dir)).cancel.exists():
            return True
        try:
            run_script(run_dir)
            return True
        except JobScriptFailed:
            return False

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        failed = sum(not ok for ok in pool.map(one, run_dirs))
    if out is not None:
        collect_study(study_dir, out)
    return failed


def collect_study(study_dir: str, out: str) -> list[str]:
    """The collect job chained after a sweep: the study's table and plots into `out`."""
    from .analysis import collect as col

    report = col.collect([Path(study_dir)])
    return [str(p) for p in col.write(report, Path(out))]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


# ----------------------------------------------------------------------------------------------------------
# what runs inside the job (on the compute node, under submitit)


class JobScriptFailed(RuntimeError):
    pass


def max_requeues() -> int:
    return int(os.environ.get("HPCDL_MAX_REQUEUES", "10"))


def _note(run: RunDir, text: str) -> None:
    with open(run.job_log, "a") as log:
        log.write(f"[hpcdl] {text}\n")


def stop_margin(limit_s: float) -> float:
    """How long before the time limit the workers are asked to stop (they finish their epoch first)."""
    return max(20.0, min(300.0, 0.25 * limit_s))


def run_script(run_dir: str) -> int:
    """Run the rendered job.sh, streaming its output to job.log; record how it ended in exit.json.

    Signals that reach this process (scancel, the local controller, `hpcdl cancel`) are forwarded to the
    script's whole process group, so torchrun and its workers stop with it. On SLURM it also watches the
    time limit: shortly before it, it writes stop.json (the workers checkpoint and stop after their epoch)
    and requeues the job, which then resumes from the checkpoint. A requeue also comes from SLURM itself
    (preemption, `scontrol requeue`): the new attempt resumes the same way.
    """
    run = RunDir(Path(run_dir))
    for stale in (run.exit, run.stop):  # left by an earlier attempt of a requeued job
        stale.unlink(missing_ok=True)
    job_id = os.environ.get("SLURM_JOB_ID")
    attempt = int(os.environ.get("SLURM_RESTART_COUNT", "0")) + 1
    if attempt > 1:
        _note(run, f"attempt {attempt} of job {job_id} on {socket.gethostname()}")
    started = time.time()
    with open(run.job_log, "ab", buffering=0) as log:
        proc = subprocess.Popen(
            ["bash", str(run.script)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=run.path,
            start_new_session=True,
        )
    _RUNNING[proc.pid] = []
    _forward_signals()
    if job_id:
        spec = read_json(run.spec) or {}
        limit_s = 60.0 * float(spec.get("time_limit", 60))
        watcher = threading.Thread(target=_watch_time_limit, args=(run, proc, job_id, started, limit_s), daemon=True)
        watcher.start()
    rc = proc.wait()
    received = _RUNNING.pop(proc.pid, [])
    result = read_json(run.result) or {}
    if job_id and run.stop.exists() and result.get("status") != "success" and not run.cancel.exists() and not received:
        _requeue(run, job_id, "the workers stopped before the time limit")
    if rc == 0 and result.get("status") == "success":
        state = "COMPLETED"
    elif rc == 0 and run.stop.exists():
        state = "STOPPED"  # stopped early on request (before a time limit): resubmitting resumes it
    elif run.cancel.exists():
        state = "CANCELLED"
    elif received:
        state = "TERMINATED"
    else:
        state = "FAILED"
    record = {
        "returncode": rc,
        "state": state,
        "started": started,
        "ended": time.time(),
        "host": socket.gethostname(),
        "attempt": attempt,
    }
    if received:
        record["signals"] = [signal.Signals(s).name for s in received]
    write_json(run.exit, record)
    if state != "COMPLETED":
        raise JobScriptFailed(f"job script ended {state} (status {rc}); see {run.job_log}")
    return rc


_RUNNING: dict[int, list[int]] = {}  # job scripts running in this process: pid -> signals forwarded to them


def _forward_signals() -> None:
    """SIGTERM/SIGINT reaching this process go on to every running script's process group (torchrun and
    its workers stop with it). Installed from the main thread; threads (parallel local sweeps) share it."""
    if threading.current_thread() is not threading.main_thread():
        return

    def forward(signum, _frame):
        for pid, received in list(_RUNNING.items()):
            received.append(signum)
            try:
                os.killpg(pid, signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)


def _watch_time_limit(run: RunDir, proc: subprocess.Popen, job_id: str, started: float, limit_s: float) -> None:
    def wait_until(t: float) -> bool:  # True if the script is still running at time t
        while time.time() < t:
            if proc.poll() is not None:
                return False
            time.sleep(0.5)
        return proc.poll() is None

    margin = stop_margin(limit_s)
    if not wait_until(started + limit_s - margin):
        return
    write_json(run.stop, {"reason": "time limit", "time": time.time(), "job_id": job_id})
    _note(run, f"time limit in {margin:.0f} s: asked the workers to stop after this epoch")
    if wait_until(started + limit_s - 8):
        _requeue(run, job_id, "the time limit is 8 s away and the workers are still running")


def _requeue(run: RunDir, job_id: str, why: str) -> None:
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    if restarts >= max_requeues():
        _note(run, f"not requeued: job {job_id} was already requeued {restarts} times (HPCDL_MAX_REQUEUES)")
        return
    _note(run, f"requeueing job {job_id}: {why}")
    try:
        subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60, capture_output=True)
    except (OSError, subprocess.SubprocessError) as exc:
        _note(run, f"requeue failed: {exc}")
        return
    time.sleep(300)  # SLURM ends this attempt now; the requeued job starts again from the checkpoint


# ----------------------------------------------------------------------------------------------------------
# backends


@functools.lru_cache(maxsize=1)
def _detached_local_executor():
    """submitit's LocalExecutor whose controller is detached from the submitting terminal.

    The controller must not hold the caller's stdout (a pipe would stay open until the job ends) nor
    share its process group (Ctrl-C in the terminal must not kill the job): like a batch job.
    """
    import submitit
    from submitit.local import local as sl

    class DetachedLocalExecutor(submitit.LocalExecutor):
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
                CUDA_VISIBLE_DEVICES=",".join(str(k) for k in range(self.parameters["gpus_per_node"])),
            )
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


class _Local:
    """This machine, through submitit's LocalExecutor."""

    def submit(self, run: RunDir, spec: JobSpec, rendered: Rendered) -> str:
        executor = _detached_local_executor()(folder=run.submitit)
        executor.update_parameters(**rendered.parameters)
        return str(executor.submit(run_script, str(run.path)).job_id)

    def submit_sweep(
        self,
        runs: list[RunDir],
        big: JobSpec,
        sbatch: dict,
        throttle: int,
        study_dir: Path,
        out: Path | None,
        parallel: int = 1,
    ) -> tuple[list[str], str | None]:
        folder = study_dir / ".submitit"
        folder.mkdir(exist_ok=True)
        executor = _detached_local_executor()(folder=folder)
        total = sum(int((read_json(r.spec) or {}).get("time_limit", 60)) for r in runs)
        executor.update_parameters(tasks_per_node=1, gpus_per_node=big.gpus, timeout_min=total + 5)
        job = executor.submit(
            run_sequence, [str(r.path) for r in runs], str(study_dir), None if out is None else str(out), parallel
        )
        jid = str(job.job_id)
        return [jid] * len(runs), jid if out is not None else None

    def state(self, run: RunDir, sub: dict) -> str:
        ended = read_json(run.exit)
        if ended:
            return ended["state"]
        if _local_job_alive(sub["job_id"]):
            # a point of a local sweep waits for the points before it
            return "RUNNING" if run.job_log.exists() or "array" not in sub else "PENDING"
        return "CANCELLED" if run.cancel.exists() else "LOST"

    def job_state(self, job_id: str) -> str:
        return "RUNNING" if _local_job_alive(job_id) else "COMPLETED"

    def cancel(self, run: RunDir, sub: dict) -> None:
        if _local_job_alive(sub["job_id"]):
            os.kill(int(sub["job_id"]), signal.SIGTERM)  # the controller forwards it to run_script, and on


def _local_job_alive(job_id: str) -> bool:
    """Whether a local job's controller (submitit.local._local) is still running."""
    try:
        cmdline = Path(f"/proc/{int(job_id)}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return False
    return b"submitit.local._local" in cmdline


class _Slurm:
    """submitit's SlurmExecutor. use_srun=False: the rendered script owns the launch."""

    # submitit's parameter names for the SLURM options it knows; the rest go in additional_parameters
    KNOWN = {
        "job-name": "job_name",
        "partition": "partition",
        "nodes": "nodes",
        "ntasks-per-node": "ntasks_per_node",
        "cpus-per-task": "cpus_per_task",
        "gres": "gres",
    }

    def _executor(self, folder: Path, sbatch: dict[str, str], time_min: int, **more: Any):
        import submitit

        params: dict[str, Any] = {"time": time_min, "use_srun": False, "stderr_to_stdout": True, **more}
        extra: dict[str, str] = {}
        for key, value in sbatch.items():
            if key == "time":
                continue
            if key in self.KNOWN:
                params[self.KNOWN[key]] = int(value) if value.isdigit() else value
            else:
                extra[key] = value
        if extra:
            params["additional_parameters"] = extra
        executor = submitit.SlurmExecutor(folder=folder, python=shlex.quote(sys.executable))
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
        sbatch: dict,
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

    def state(self, run: RunDir, sub: dict) -> str:
        return slurm_state(sub["job_id"], read_json(run.exit))

    def job_state(self, job_id: str) -> str:
        return slurm_state(job_id)

    def cancel(self, run: RunDir, sub: dict) -> None:
        subprocess.run(["scancel", sub["job_id"]], check=True, timeout=30, capture_output=True)


def query_timeout() -> float:
    return float(os.environ.get("HPCDL_QUERY_TIMEOUT", "10"))


def _ask(argv: list[str]) -> str | None:
    """A scheduler command's stdout, or None if it is missing, fails or does not answer in time."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=query_timeout(), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def slurm_state(job_id: str, ended: dict | None = None) -> str:
    """A SLURM job's state from sacct, else squeue, else scontrol, else the job's own exit record.

    Every query is bounded (HPCDL_QUERY_TIMEOUT, default 10 s): status never hangs, also when accounting
    is down. Array tasks are given as <array id>_<index>.
    """
    out = _ask(["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "JobID,State"])
    for line in (out or "").splitlines():
        jid, _, state = line.partition("|")
        if jid == job_id and state:
            return state.split()[0].rstrip("+")
    out = _ask(["squeue", "-h", "-j", job_id, "-o", "%T"])
    if out and out.strip():
        return out.split()[0]
    out = _ask(["scontrol", "show", "job", "-o", job_id])
    if out:
        for field in out.split():
            if field.startswith("JobState="):
                return field.split("=", 1)[1]
    if ended:
        return ended["state"]
    return "UNKNOWN"


_BACKENDS = {"local": _Local, "slurm": _Slurm}


def _backend(name: str):
    return _BACKENDS[name]()


# ----------------------------------------------------------------------------------------------------------
# state, cancel, wait (used by status, logs, cancel and submit --wait)


def submission(run: RunDir) -> dict:
    sub = read_json(run.submission)
    if not sub:
        raise UsageError(f"run {run.run_id} has no submission record ({run.submission})")
    return sub


def state(run: RunDir) -> str:
    sub = submission(run)
    return _backend(sub["executor"]).state(run, sub)


def cancel(run: RunDir) -> str:
    """Cancel a run; return its state before cancelling."""
    sub = submission(run)
    before = _backend(sub["executor"]).state(run, sub)
    if before in TERMINAL:
        return before
    write_json(run.cancel, {"time": time.time(), "by": os.environ.get("USER", "")})
    _backend(sub["executor"]).cancel(run, sub)
    return before


def wait_job(executor: str, job_id: str, timeout_s: float, poll_s: float = 1.0) -> str:
    """Block until a job (a sweep's collect job, or its local sequence) ends or timeout_s passes."""
    backend = _backend(executor)
    deadline = time.monotonic() + timeout_s
    current = backend.job_state(job_id)
    while current not in TERMINAL and time.monotonic() < deadline:
        time.sleep(poll_s)
        current = backend.job_state(job_id)
    return current


def wait(run: RunDir, timeout_s: float, poll_s: float = 1.0) -> str:
    """Block until the run reaches a terminal state or timeout_s passes; return the last state seen."""
    deadline = time.monotonic() + timeout_s
    current = state(run)
    while current not in TERMINAL and time.monotonic() < deadline:
        time.sleep(poll_s)
        current = state(run)
    return current
