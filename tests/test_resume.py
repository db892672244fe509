"""Stopping mid-epoch and resuming exactly (issue 11): a step checkpoint at the stop request or at SIGTERM,
and a resumed run whose loss curve is the uninterrupted run's. The job script runs as the wrapper runs it
(bash job.sh); the timing of a stop never decides the outcome."""

import json
import os
import signal
import subprocess

import pytest

from hpc_dl import profiles
from hpc_dl import submit as sub
from hpc_dl.spec import JobSpec
from tests.test_real_runs import wait_for

pytestmark = pytest.mark.slow

SPEC = JobSpec(strategy="ddp", gpus=2, train_samples=2048, test_samples=128, batch_size=32, epochs=2)


def events(run, rank=0):
    return [json.loads(x) for x in run.rank_events(rank).read_text().splitlines()]


def losses(run) -> list[float]:
    return [e["loss"] for e in events(run) if e["event"] == "epoch_stop"]


def job(runs_root, study):
    run, _ = sub._prepare(SPEC, profiles.load("local"), runs_root, study, None)
    return run


def run_to_end(run, env=None):
    out = subprocess.run(["bash", str(run.script)], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


@pytest.fixture
def uninterrupted(runs_root):
    run = job(runs_root, "whole")
    run_to_end(run)
    return losses(run)


def test_a_stop_request_mid_epoch_checkpoints_the_step_and_resumes_exactly(runs_root, uninterrupted):
    run = job(runs_root, "cut")
    run.stop.write_text('{"reason": "test"}')
    run_to_end(run, dict(os.environ, HPCDL_STOP_CHECK_STEPS="5"))  # stops at step 5 of epoch 1
    assert not run.result.exists()
    run.stop.unlink()
    run_to_end(run)
    for rank in (0, 1):
        stops = [e for e in events(run, rank) if e["event"] == "run_stop"]
        assert [(e["status"], e.get("epoch"), e.get("step")) for e in stops] == [
            ("requeue", 1, 5),
            ("success", None, None),
        ]
        assert [e["epoch"] for e in events(run, rank) if e["event"] == "epoch_stop"] == [1, 2]
    assert [e.get("resumed_at_step") for e in events(run) if e["event"] == "run_start"] == [None, 5]
    assert losses(run) == pytest.approx(uninterrupted, rel=1e-6)


def test_sigterm_mid_run_checkpoints_and_the_resumed_run_matches(runs_root, uninterrupted):
    run = job(runs_root, "term")
    proc = subprocess.Popen(["bash", str(run.script)], start_new_session=True, stdout=subprocess.DEVNULL)
    wait_for(lambda: run.rank_events(1).exists() and "run_start" in run.rank_events(1).read_text(), 120, "start")
    os.killpg(proc.pid, signal.SIGTERM)  # what SLURM does to a preempted or requeued job's processes
    proc.wait(timeout=120)  # the shell ends at once; torchrun and the workers end after the checkpoint

    def workers_gone():
        found = subprocess.run(["pgrep", "-f", str(run.path)], capture_output=True, text=True).stdout
        return not found.strip()

    wait_for(workers_gone, 120, "the workers to checkpoint and end")
    stops = [e for e in events(run) if e["event"] == "run_stop"]
    assert [e["status"] for e in stops] == ["requeue"]
    assert "stop requested (SIGTERM (preempted)): checkpointed and stopped at step" in run.rank_log(0).read_text()
    run_to_end(run)
    assert [e["epoch"] for e in events(run) if e["event"] == "epoch_stop"] == [1, 2]
    assert losses(run) == pytest.approx(uninterrupted, rel=1e-6)
