"""Real jobs through submitit's local executor: torchrun, 2 CPU workers with gloo, Fashion-MNIST from Debian."""

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hpc_dl.analysis import collect as col

from hpc_dl import control
from hpc_dl import runs as runs_mod
from tests.conftest import run_folders

pytestmark = pytest.mark.slow

NASTY = "\"; rm -rf ~; echo '$(id)"
SMALL = [
    "--profile",
    "local",
    "--model",
    "mnist-cnn",
    "--dataset",
    "fashion-mnist",
    "--train-samples",
    "1024",
    "--test-samples",
    "256",
    "--batch-size",
    "32",
]


def submitted_run(result, runs_root: Path) -> runs_mod.RunDir:
    first = result.stdout.splitlines()[0]
    assert first.startswith("submitted run ")
    return runs_mod.resolve(first.split()[2], runs_root)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_ddp_two_workers_then_one_then_collect(hpcdl, runs_root, tmp_path):
    result = hpcdl("submit", *SMALL, "--gpus", "2", "--epochs", "2", "--job-name", NASTY, "--wait")
    assert result.exit_code == 0, result.output
    run = submitted_run(result, runs_root)
    lines = result.stdout.splitlines()
    assert lines[1:] == [
        f"  folder  {run.path}",
        f"  log     {run.job_log}",
        f"  ranks   {run.logs}/rank-<R>.log",
        f"  follow  hpcdl logs {run.run_id} --runs-dir {runs_root} --follow",
        f"run {run.run_id}: COMPLETED",
    ]
    # what ran is the saved script, with the job name quoted and intact
    script = run.script.read_text()
    assert f"#SBATCH --job-name={shlex.quote(NASTY)}\n" in script
    assert json.loads(run.spec.read_text())["job_name"] == NASTY
    assert runs_mod.read_json(run.exit)["state"] == "COMPLETED"
    # each rank wrote its events; the throughput is global (the same on both ranks), samples add up
    for rank in (0, 1):
        events = [json.loads(x) for x in run.rank_events(rank).read_text().splitlines()]
        assert [e["event"] for e in events] == ["run_start", "epoch_stop", "eval", "epoch_stop", "eval", "run_stop"]
        assert events[0]["world_size"] == 2 and events[0]["device"] == "cpu" and events[0]["backend"] == "gloo"
        assert [e["samples"] for e in events if e["event"] == "epoch_stop"] == [1024, 1024]
        assert [e["rank_samples"] for e in events if e["event"] == "epoch_stop"] == [512, 512]
        peaks = [e["peak_memory(MiB)"] for e in events if e["event"] in ("epoch_stop", "run_stop")]
        assert len(peaks) == 3 and all(p > 100 for p in peaks) and peaks == sorted(peaks)  # a high-water mark
    r0 = [json.loads(x) for x in run.rank_events(0).read_text().splitlines()]
    r1 = [json.loads(x) for x in run.rank_events(1).read_text().splitlines()]
    assert r0[1]["throughput(samples/s)"] == r1[1]["throughput(samples/s)"]
    assert r0[1]["throughput(samples/s)"] == pytest.approx(1024 / max(r0[1]["rank_time(s)"], r1[1]["rank_time(s)"]))
    assert runs_mod.read_json(run.result)["status"] == "success"
    assert "[rank 1] INFO epoch 2/2" in run.rank_log(1).read_text()
    assert "[rank 0] INFO done in" in run.job_log.read_text()

    status = json.loads(hpcdl("status", "--json").stdout)
    assert [(s["run"], s["state"], s["executor"]) for s in status] == [(run.run_id, "COMPLETED", "local")]
    assert hpcdl("logs", run.run_id, "--rank", "1").stdout == run.rank_log(1).read_text()

    one = hpcdl("submit", *SMALL, "--gpus", "1", "--epochs", "2", "--wait")
    assert one.exit_code == 0, one.output
    report = col.collect([runs_root])
    s = report.scaling
    assert list(s["workers"]) == [1, 2] and list(s["runs"]) == [1, 1]
    assert s["speedup"][0] == 1.0 and s["speedup"][1] > 0
    assert (s["test_accuracy"] > 0.1).all()
    result = hpcdl("collect", str(runs_root), "--out", str(tmp_path / "results"))
    assert result.exit_code == 0
    assert result.stdout.startswith("# Scaling report\n\n2 run(s) found, 2 completed.\n")
    # the peak is the largest of any rank's; this machine held what the run asked: 2 workers x 1 thread
    held = runs_mod.read_json(run.exit)
    assert (held["allocation"]["source"], held["allocation"]["cpus"], held["allocation"]["gpus"]) == ("asked", 2, 0)
    row = report.runs.set_index("run").loc[run.run_id]
    assert row["peak_memory_mib"] == max(e["peak_memory(MiB)"] for e in r0 + r1 if "peak_memory(MiB)" in e)
    assert (row["resource"], row["resource_units"], row["idle_units"]) == ("cpu", 2, 0)
    assert row["resource_hours"] == pytest.approx(2 * held["attempts_wall_s"] / 3600)
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "breakdown.csv",  # CPU workers time their phases
        "epochs.csv",
        "runs.csv",
        "scaling.csv",
        "scaling.md",
        "speedup.png",
        "throughput.png",
    ]


def test_logs_follow_streams_while_the_job_runs(hpcdl, runs_root):
    result = hpcdl("submit", *SMALL, "--gpus", "2", "--epochs", "4")
    run = submitted_run(result, runs_root)
    follow = subprocess.Popen(
        [sys.executable, "-m", "hpc_dl.cli", "logs", run.run_id, "--follow", "--poll", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    seen_while_running = False
    out = []
    for line in follow.stdout:
        out.append(line)
        if "INFO epoch 1/4" in line:
            seen_while_running = not run.exit.exists()
    assert follow.wait(timeout=120) == 0
    assert seen_while_running, "the first epoch's line arrived only after the job ended"
    assert "".join(out) == run.job_log.read_text()
    assert follow.stderr.read() == f"[hpcdl] run {run.run_id}: COMPLETED\n"


def test_cancel_stops_every_process(hpcdl, runs_root):
    result = hpcdl(
        "submit",
        "--profile",
        "local",
        "--dataset",
        "synthetic",
        "--model",
        "resnet18",
        "--gpus",
        "2",
        "--train-samples",
        "100000",
        "--epochs",
        "50",
    )
    run = submitted_run(result, runs_root)
    wait_for(lambda: run.rank_events(1).exists() and run.rank_events(1).stat().st_size > 0, 60, "rank 1 to start")
    assert control.state(run) == "RUNNING"
    assert hpcdl("status").stdout.splitlines()[1].endswith("RUNNING")
    cancelled = hpcdl("cancel", run.run_id)
    assert cancelled.stdout == f"cancelled run {run.run_id} (was RUNNING)\n"
    assert wait_for(lambda: control.state(run).is_terminal and control.state(run), 30, "the run to end") == "CANCELLED"

    def no_process_left():  # the submitit task and controller exit right after the script's exit is recorded
        return subprocess.run(["pgrep", "-f", str(run.path)], capture_output=True, text=True).stdout == ""

    wait_for(no_process_left, 15, "every process of the run to exit")
    assert hpcdl("cancel", run.run_id).stdout == f"run {run.run_id} already ended: CANCELLED\n"
    row = col.collect([runs_root]).runs.iloc[0]
    assert row["state"] == "CANCELLED"


def test_a_failing_job_is_failed_with_its_reason(hpcdl, runs_root, tmp_path):
    (tmp_path / "empty").mkdir()
    result = hpcdl(
        "submit",
        "--profile",
        "local",
        "--dataset",
        "mnist",
        "--data-root",
        str(tmp_path / "empty"),
        "--gpus",
        "2",
        "--wait",
    )
    assert result.exit_code == 1
    run = submitted_run(result, runs_root)
    assert result.stdout.splitlines()[-1] == f"run {run.run_id}: FAILED"
    row = col.collect([runs_root]).runs.iloc[0]
    assert row["state"] == "FAILED"
    # both ranks fail the same way; the reason is the error of the rank torchrun saw fail first
    assert re.match(
        rf"rank [01]: DataError: mnist not found under {re.escape(str(tmp_path / 'empty'))}: ", row["reason"]
    )
    assert len(run_folders(runs_root)) == 1


def test_local_sweep_runs_the_points_in_turn_then_collects(hpcdl, runs_root, tmp_path):
    """With --probe: the probe of its one 2-worker shape runs first, then the points; plan finds it."""
    out = tmp_path / "report"
    result = hpcdl(
        "sweep",
        "--profile",
        "local",
        "--gpus",
        "1,2",
        "--train-samples",
        "512",
        "--test-samples",
        "128",
        "--batch-size",
        "32",
        "--study",
        "sw",
        "--out",
        str(out),
        "--probe",
        "--wait",
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("submitted sweep of 3 run(s) as job ") and lines[0].endswith(
        "(local executor, at most 4 at once)"
    )
    assert lines[1] == f"  collect  in the same local job, after the runs -> {out}"
    job = lines[0].split()[7]
    assert lines[-3] == f"sweep {job}: 3 of 3 run(s) completed; collect COMPLETED"
    runs = runs_mod.find_runs([runs_root / "sw"])
    times = {r: (runs_mod.read_json(r.exit)["started"], runs_mod.read_json(r.exit)["ended"]) for r in runs}
    order = sorted(runs, key=lambda r: times[r])
    spans = [times[r] for r in order]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), spans  # timings never overlap
    probe_run = order[0]
    assert [r.probe.exists() for r in order] == [True, False, False]
    report = (out / "scaling.md").read_text()
    assert report.startswith("# Scaling report\n\n2 run(s) found, 2 completed.\n")  # the probe trains nothing
    assert "## Network (hpcdl probe)" in report
    planned = hpcdl("plan", str(runs_root / "sw"), "--workers", "4")
    assert planned.exit_code == 0, planned.output
    assert f"- Network: probe {probe_run.run_id} (gloo, 1 node(s))." in planned.stdout.splitlines()


def test_submit_repeats_are_separate_runs_that_collect_combines(hpcdl, runs_root):
    result = hpcdl("submit", *SMALL, "--gpus", "1", "--epochs", "2", "--repeats", "2", "--wait")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert sum(line.startswith("submitted run ") for line in lines) == 2
    assert [line.split(": ")[1] for line in lines if line.startswith("run ")] == ["COMPLETED", "COMPLETED"]
    s = col.collect([runs_root]).scaling
    assert (s["runs"][0], s["workers"][0]) == (2, 1)
    assert s["throughput_ci_low"][0] <= s["throughput"][0] <= s["throughput_ci_high"][0]
