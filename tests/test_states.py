"""The one state model: every state a backend or the job wrapper can report maps into State, and a run
whose wrapper is ended by SIGTERM ends status, --wait and logs --follow at once, with the signal."""

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpc_dl import control
from hpc_dl import runs as runs_mod
from hpc_dl.backends.local import LocalBackend
from hpc_dl.backends.slurm import SLURM_STATES, SlurmBackend
from hpc_dl.states import WRAPPER_STATES, State

SQUEUE_MAN = Path("/usr/share/man/man1/squeue.1.gz")


def test_a_local_job_that_ends_between_the_two_looks_is_its_exit_record_not_lost(tmp_path, monkeypatch):
    """The exit record is written just before the job's controller ends: a look that finds no record, then
    no controller, reads the record once more (a 1-worker run under load was once reported LOST)."""
    from hpc_dl.backends import local

    run = runs_mod.RunDir.create(tmp_path, "s", "r1")

    def ends_now(_job_id):  # the job writes its record and exits while the state is read
        runs_mod.write_json(run.exit, {"state": "COMPLETED"})
        return False

    monkeypatch.setattr(local, "local_job_alive", ends_now)
    assert LocalBackend._state(run, {"job_id": "1"}) == "COMPLETED"
    run.exit.unlink()
    monkeypatch.setattr(local, "local_job_alive", lambda _job_id: False)
    assert LocalBackend._state(run, {"job_id": "1"}) == "LOST"


def test_every_state_has_one_kind():
    for s in State:
        kinds = [s.is_terminal, s.is_going, s in (State.NOT_SUBMITTED, State.UNKNOWN)]
        assert kinds.count(True) == 1, s
    assert [s for s in State if s.needs_rerun] == [
        State.NOT_SUBMITTED,
        State.UNKNOWN,
        *[s for s in State if s.is_terminal and s is not State.COMPLETED],
    ]
    assert f"{State.TERMINATED}" == str(State.TERMINATED) == "TERMINATED"
    assert json.dumps({"state": State.NOT_SUBMITTED}) == '{"state": "NOT SUBMITTED"}'


def test_names_map_through_a_backend_then_by_name():
    assert State.of("CANCELLED by 0") is State.CANCELLED
    assert State.of("COMPLETED+") is State.COMPLETED
    assert State.of("STOPPED") is State.STOPPED  # the wrapper's: stopped on request
    assert State.of("STOPPED", SLURM_STATES) is State.SUSPENDED  # SLURM's: SIGSTOP'd, allocation kept
    assert State.of("SOMETHING NEW") is State.UNKNOWN
    assert State.of(None) is State.UNKNOWN


def test_every_backend_maps_what_it_reports_into_the_model():
    assert {s.value for s in WRAPPER_STATES} <= {s.value for s in State}  # exit.json's states are States
    for backend in (LocalBackend, SlurmBackend):
        assert backend.STATES, backend
        assert all(isinstance(v, State) for v in backend.STATES.values()), backend
    assert {s.value for s in WRAPPER_STATES} <= set(LocalBackend.STATES)


def squeue_state_codes() -> list[str]:
    """The job states the installed SLURM documents (squeue(1), JOB STATE CODES)."""
    text = gzip.open(SQUEUE_MAN, "rt").read()
    section = text.split('.SH "JOB STATE CODES"', 1)[1].split(".SH ", 1)[0]
    return re.findall(r"^\\fB[A-Z]{1,3} +([A-Z_]+)\\fR", section, re.M)


def test_every_state_the_real_slurm_documents_maps_into_the_model(slurm_cluster):
    if not SQUEUE_MAN.exists():
        pytest.fail(f"{SQUEUE_MAN} missing: cannot list SLURM's states")
    codes = squeue_state_codes()
    assert len(codes) >= 20 and "RUNNING" in codes and "STOPPED" in codes
    assert [c for c in codes if c not in SLURM_STATES] == []


# ----------------------------------------------------------------------------------------------------------
# SIGTERM to the wrapper


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


def epoch_1_logged(run: runs_mod.RunDir) -> bool:
    path = run.rank_events(0)
    return path.exists() and '"epoch_stop"' in path.read_text()


def wrapper_pid(run: runs_mod.RunDir) -> int:
    """The job wrapper (hpc_dl.node.jobscript.run_script's process): the parent of `bash <run>/job.sh`."""
    want = ["bash", str(run.script)]
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode().split("\0")[:-1]
            if argv == want:
                status = (proc / "status").read_text()
                return int(re.search(r"^PPid:\s+(\d+)", status, re.M)[1])
        except (OSError, ValueError):
            continue
    raise AssertionError(f"no process runs {run.script}")


def held_run(hpcdl, runs_root, monkeypatch, *profile: str) -> runs_mod.RunDir:
    monkeypatch.setenv("HPCDL_TEST_HOLD_AFTER_EPOCH", "1")  # the ranks wait after epoch 1 until stopped
    result = hpcdl("submit", *profile, "--train-samples", "256", "--test-samples", "64", "--epochs", "2")
    assert result.exit_code == 0, result.output
    (folder,) = [p.parent for p in runs_root.rglob("spec.json")]
    run = runs_mod.RunDir(folder)
    wait_for(lambda: epoch_1_logged(run), 180, "epoch 1")
    return run


def check_ended_by_sigterm(run: runs_mod.RunDir, hpcdl) -> None:
    follow = subprocess.run(
        [sys.executable, "-m", "hpc_dl.cli", "logs", str(run.path), "--follow", "--poll", "0.2"],
        capture_output=True,
        text=True,
        timeout=120,  # it used to wait for ever: no process of the run was left
        env=os.environ,
    )
    assert follow.returncode == 1
    assert follow.stderr.strip().splitlines()[-1] == f"[hpcdl] run {run.run_id}: TERMINATED (SIGTERM)"
    assert control.wait(run, timeout_s=60) is State.TERMINATED
    result = hpcdl("status", str(run.path), "--json")
    (row,) = json.loads(result.stdout)
    assert (row["state"], row["signals"]) == ("TERMINATED", ["SIGTERM"])
    table = hpcdl("status", str(run.path)).stdout.splitlines()
    assert "TERMINATED (SIGTERM)" in table[1]


@pytest.mark.slow
def test_sigterm_to_a_local_wrapper_ends_status_wait_and_follow(hpcdl, runs_root, monkeypatch):
    run = held_run(hpcdl, runs_root, monkeypatch, "--profile", "local")
    os.kill(wrapper_pid(run), signal.SIGTERM)
    wait_for(run.exit.exists, 60, "the exit record")
    check_ended_by_sigterm(run, hpcdl)


@pytest.mark.slurm
def test_sigterm_to_a_slurm_wrapper_ends_status_wait_and_follow(on_cluster, hpcdl, runs_root, monkeypatch):
    run = held_run(hpcdl, runs_root, monkeypatch, "--profile", "testcluster")
    job_id = json.loads(run.submission.read_text())["job_id"]
    subprocess.run(["scancel", "--batch", "--signal=TERM", job_id], check=True, timeout=30)  # the batch shell
    wait_for(run.exit.exists, 60, "the exit record")
    check_ended_by_sigterm(run, hpcdl)
