"""What runs on the compute node around the user's job, under submitit: the job script's wrapper.

`run_script` runs the rendered job.sh, streams its output to job.log, forwards signals to it, watches
the time limit (stop request, then requeue), and records how the job ended in exit.json.
`run_sequence` is the local profile's sweep: the points in turn, then collect. Nothing here runs on
the login node; the login-node side is hpc_dl/submit.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from ..runs import RunDir, read_json, write_json
from ..spec import JobSpec
from . import allocation


def run_sequence(run_dirs: list[str], study_dir: str, out: str | None, parallel: int = 1) -> int:
    """The local profile's sweep: the points one after another (timings of a scaling study must not
    overlap), or `parallel` at a time (kfold: independent trainings), then collect."""
    from concurrent.futures import ThreadPoolExecutor

    _forward_signals(None)

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
    from ..analysis import collect as col

    report = col.collect([Path(study_dir)])
    return [str(p) for p in col.write(report, Path(out))]


class JobScriptFailed(RuntimeError):
    pass


WARNING_SIGNAL = signal.SIGUSR1  # SLURM's warning before the time limit: sbatch --signal=B:USR1@<margin>


def max_requeues() -> int:
    return int(os.environ.get("HPCDL_MAX_REQUEUES", "10"))


def attempt_number() -> int:
    """This attempt of the job: 1, then 2 after the first requeue (SLURM_RESTART_COUNT, set by slurmd)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0")) + 1


def requeue_target() -> str | None:
    """What `scontrol requeue` must name: this array task alone (<array id>_<task>), never the whole
    array (in an array, one task's SLURM_JOB_ID is the array's id); None outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def _note(run: RunDir, text: str) -> None:
    with open(run.job_log, "a") as log:
        log.write(f"[hpcdl] {text}\n")


def stop_margin(limit_s: float) -> float:
    """How long before the time limit the workers are asked to stop (they checkpoint and stop)."""
    return max(20.0, min(300.0, 0.25 * limit_s))


def write_exit(run: RunDir, record: dict) -> bool:
    """Write exit.json unless a newer attempt wrote it, or the run already COMPLETED (final)."""
    old = read_json(run.exit) or {}
    if old.get("state") == "COMPLETED" or int(old.get("attempt", 0)) > record["attempt"]:
        _note(
            run, f"attempt {record['attempt']} left exit.json alone (attempt {old.get('attempt')}: {old.get('state')})"
        )
        return False
    write_json(run.exit, record)
    return True


def held(run: RunDir, record: dict) -> dict:
    """The exit record's allocation (allocation.py), this attempt's wall seconds, and every attempt's
    together (`attempts_wall_s`: the earlier attempts' record carries theirs; a requeued run held its
    allocation each time)."""
    wall = record["ended"] - record["started"]
    old = read_json(run.exit) or {}
    before = old.get("attempts_wall_s", 0.0) if int(old.get("attempt", 0)) < record["attempt"] else 0.0
    return {
        "allocation": allocation.of_run(run, os.environ).to_dict(),
        "wall_s": round(wall, 3),
        "attempts_wall_s": round(wall + (before if isinstance(before, (int, float)) else 0.0), 3),
    }


def run_script(run_dir: str) -> int:
    """Run the rendered job.sh, streaming its output to job.log; record how it ended in exit.json.

    Signals that reach this process (scancel, the local controller, `hpcdl cancel`) are forwarded to the
    script's whole process group, so torchrun and its workers stop with it. SLURM's warning signal
    (USR1, `margin` seconds before the limit), or the time-limit watcher, writes stop.json: the workers
    checkpoint at their next step and stop, and this attempt requeues its own job (its array task only)
    and ends at once; the next attempt resumes from the checkpoint. A run that COMPLETED is final: an
    attempt that finds it so (an outside requeue) does nothing.
    """
    run = RunDir(Path(run_dir))
    attempt, target = attempt_number(), requeue_target()
    if (read_json(run.exit) or {}).get("state") == "COMPLETED":
        _note(run, f"attempt {attempt}: the run already COMPLETED; nothing to do")
        return 0
    run.stop.unlink(missing_ok=True)  # left by an earlier attempt of a requeued job
    if attempt > 1:
        _note(run, f"attempt {attempt} of job {target} on {socket.gethostname()}")
    started = time.time()
    proc = _start(run)
    on_slurm = bool(target and os.environ.get("SLURM_JOB_ID"))
    watcher = threading.Event()  # set when the watcher requeued the job (the workers did not stop in time)
    if on_slurm:
        limit_s = 60.0 * (run.read_spec() or JobSpec()).time_limit
        args = (run, proc, target, started, limit_s, watcher)
        threading.Thread(target=_watch_time_limit, args=args, daemon=True).start()
    rc = proc.wait()
    received = _RUNNING.pop(proc.pid, [])
    state, note = _outcome(run, rc, received)
    if watcher.is_set() or (state == "STOPPED" and on_slurm and _requeue(run, target, "the workers stopped")):
        state = "REQUEUED"
    record = {"returncode": rc, "state": state, "started": started, "ended": time.time()}
    record.update(host=socket.gethostname(), attempt=attempt, job_id=target)
    record.update(held(run, record))
    if received:
        record["signals"] = [signal.Signals(s).name for s in received]
    if note:
        record["note"] = note
    write_exit(run, record)
    if state not in ("COMPLETED", "REQUEUED"):
        raise JobScriptFailed(f"job script ended {state} (status {rc}); see {run.job_log}")
    return rc


def _start(run: RunDir) -> subprocess.Popen:
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
    _forward_signals(run)
    return proc


def _outcome(run: RunDir, rc: int, received: list[int]) -> tuple[str, str | None]:
    """The run's state, and a note when its exit status and its ranks' own end records disagree: a run
    whose every rank recorded success is final, COMPLETED, even if a rank then died at interpreter exit."""
    result = read_json(run.result) or {}
    spec = run.read_spec()
    silent_script = not result and bool(spec and spec.script)  # its exit status says
    if rc == 0 and (result.get("status") == "success" or silent_script):
        return "COMPLETED", None
    if rc != 0 and result.get("status") == "success" and (note := _finished_anyway(run, rc)):
        return "COMPLETED", note
    if run.cancel.exists():
        return "CANCELLED", None
    if rc == 0 and run.stop.exists():
        return "STOPPED", None  # stopped on request (a time-limit warning): resubmitting resumes it
    return ("TERMINATED" if received else "FAILED"), None


def _finished_anyway(run: RunDir, rc: int) -> str | None:
    """If every rank of the world its run_start named recorded success (its last run_stop since its last
    run_start), a note on how the launcher ended anyway; else None (a rank that did not finish fails)."""
    from .. import events, triage

    by_rank, _ = events.read_run(run)
    last: dict[int, list[dict]] = {}
    for rank, evs in by_rank.items():
        starts = [i for i, ev in enumerate(evs) if ev["event"] == "run_start"]
        last[rank] = evs[starts[-1] :] if starts else []
    worlds = [ev.get("world_size") for evs in last.values() for ev in evs[:1]]
    world = max((w for w in worlds if isinstance(w, int)), default=0)
    stops = {r: [ev for ev in evs if ev["event"] == "run_stop"] for r, evs in last.items()}
    if world < 1 or not all(stops.get(r) and stops[r][-1].get("status") == "success" for r in range(world)):
        return None
    seen = triage.launcher_death(run)
    if seen is None:
        return f"the launcher exited with status {rc} after every rank recorded success"
    rank, code = seen
    how = f"by {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"with exit code {code}"
    return f"rank {rank} ended {how} after recording success"


_RUNNING: dict[int, list[int]] = {}  # job scripts running in this process: pid -> signals forwarded to them


def _forward_signals(run: RunDir | None = None) -> None:
    """SIGTERM/SIGINT reaching this process go on to every running script's process group (torchrun and
    its workers stop with it; a preempted worker checkpoints first). SIGUSR1, SLURM's warning before
    the time limit, becomes a stop request. Installed from the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return

    def forward(signum, _frame):
        for pid, received in list(_RUNNING.items()):
            received.append(signum)
            try:
                os.killpg(pid, signum)
            except ProcessLookupError:
                pass

    def warned(signum, _frame):
        if run is not None and not run.stop.exists():
            write_json(run.stop, {"reason": "time limit warning (SIGUSR1)", "time": time.time()})
            _note(run, "SLURM's time-limit warning (SIGUSR1): asked the workers to checkpoint and stop")

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    signal.signal(WARNING_SIGNAL, warned)


def _watch_time_limit(run: RunDir, proc, target: str, started: float, limit_s: float, requeued: threading.Event):
    """The fallback where SLURM's warning signal does not come: a stop request `margin` before the limit;
    if the workers still run 8 s before it, requeue anyway (they resume from their last checkpoint)."""

    def wait_until(t: float) -> bool:  # True if the script is still running at time t
        while time.time() < t:
            if proc.poll() is not None:
                return False
            time.sleep(0.5)
        return proc.poll() is None

    margin = stop_margin(limit_s)
    if not wait_until(started + limit_s - margin):
        return
    if not run.stop.exists():
        write_json(run.stop, {"reason": "time limit", "time": time.time(), "job_id": target})
        _note(run, f"time limit in {margin:.0f} s: asked the workers to checkpoint and stop")
    if wait_until(started + limit_s - 8) and _requeue(run, target, "the time limit is 8 s away, workers still run"):
        requeued.set()


def _requeue(run: RunDir, target: str, why: str) -> bool:
    """Requeue this job (this array task alone); True if SLURM took it. Tried three times."""
    restarts = attempt_number() - 1
    if restarts >= max_requeues():
        _note(run, f"not requeued: job {target} was already requeued {restarts} times (HPCDL_MAX_REQUEUES)")
        return False
    _note(run, f"requeueing job {target}: {why}")
    for pause in (0, 2, 5):
        time.sleep(pause)
        try:
            subprocess.run(["scontrol", "requeue", target], check=True, timeout=60, capture_output=True, text=True)
            return True
        except subprocess.CalledProcessError as exc:
            _note(run, f"scontrol requeue {target} failed: {(exc.stderr or '').strip() or exc}")
        except (OSError, subprocess.SubprocessError) as exc:
            _note(run, f"scontrol requeue {target} failed: {exc}")
    return False
