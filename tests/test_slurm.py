"""hpcdl on a real SLURM (tests/cluster/slurm.sh): two nodes on this host, accounting, fake GPUs.

Every test goes through hpcdl as a user would type it; only the faults are made by hand (a kill -9, a
scontrol requeue, a broken sacct).
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hpc_dl.analysis import collect as col

from hpc_dl import profiles, render
from hpc_dl import submit as sub
from hpc_dl.spec import JobSpec
from tests.test_real_runs import submitted_run, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

SMALL = [
    "--profile",
    "testcluster",
    "--train-samples",
    "1024",
    "--test-samples",
    "256",
    "--batch-size",
    "32",
    "--time",
    "10",
]


def events(run, rank=0):
    return [json.loads(x) for x in run.rank_events(rank).read_text().splitlines()]


def epochs_logged(run, rank=0):
    return [e["epoch"] for e in events(run, rank) if e["event"] == "epoch_stop"]


def test_one_node_two_gpus_and_two_nodes_one_gpu_then_collect(on_cluster, hpcdl, runs_root, tmp_path):
    one = hpcdl("submit", *SMALL, "--nodes", "1", "--gpus", "2", "--epochs", "2", "--wait")
    assert one.exit_code == 0, one.output
    r1 = submitted_run(one, runs_root)
    assert one.stdout.splitlines()[0].endswith(", slurm executor)")
    start = [e for e in events(r1) if e["event"] == "run_start"][0]
    assert (start["world_size"], start["hostname"], start["cuda_visible_devices"]) == (2, "n1", "0,1")

    two = hpcdl("submit", *SMALL, "--nodes", "2", "--gpus", "1", "--epochs", "2", "--wait")
    assert two.exit_code == 0, two.output
    r2 = submitted_run(two, runs_root)
    hosts = {[e for e in events(r2, rank) if e["event"] == "run_start"][0]["hostname"] for rank in (0, 1)}
    assert hosts == {"n1", "n2"}  # torchrun rendezvoused across the two nodes
    assert "srun --nodes=2 --ntasks=2 --ntasks-per-node=1" in r2.script.read_text()

    assert sub.state(r1) == sub.state(r2) == "COMPLETED"
    report = col.collect([runs_root])
    assert [(r.workers, r.nodes) for r in report.scaling.itertuples()] == [(2, 1), (2, 2)]
    assert report.scaling["baseline_run"].tolist() == [r1.run_id, r1.run_id]


def test_pending_running_cancelled_and_follow(on_cluster, hpcdl, runs_root):
    later = hpcdl("submit", *SMALL, "--sbatch", "begin=now+3600")
    pending = submitted_run(later, runs_root)
    assert wait_for(lambda: sub.state(pending) == "PENDING", 20, "PENDING")
    long = hpcdl(
        "submit",
        "--profile",
        "testcluster",
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
        "--time",
        "10",
    )
    run = submitted_run(long, runs_root)
    follow = subprocess.Popen(
        [sys.executable, "-m", "hpc_dl.cli", "logs", run.run_id, "--follow", "--poll", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    first = follow.stdout.readline()  # streams while the job runs
    assert "[rank 0] INFO start: ddp resnet18 on synthetic, 2 worker(s)" in first
    assert sub.state(run) == "RUNNING"
    table = hpcdl("status").stdout.splitlines()
    assert [line.split()[5] for line in table[1:]] == ["PENDING", "RUNNING"]
    assert hpcdl("cancel", run.run_id).stdout == f"cancelled run {run.run_id} (was RUNNING)\n"
    assert hpcdl("cancel", pending.run_id).stdout == f"cancelled run {pending.run_id} (was PENDING)\n"
    assert follow.wait(timeout=60) == 1
    assert follow.stderr.read() == f"[hpcdl] run {run.run_id}: CANCELLED\n"
    assert wait_for(lambda: sub.state(pending) == "CANCELLED", 30, "the pending run to be CANCELLED")
    assert sub.state(run) == "CANCELLED"


def test_status_never_hangs_when_sacct_does(on_cluster, hpcdl, runs_root, tmp_path, monkeypatch):
    done = submitted_run(hpcdl("submit", *SMALL, "--wait"), runs_root)
    later = submitted_run(hpcdl("submit", *SMALL, "--sbatch", "begin=now+3600"), runs_root)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sacct").write_text("#!/bin/sh\nsleep 600\n")
    (fake / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setenv("HPCDL_QUERY_TIMEOUT", "1")
    t0 = time.monotonic()
    rows = {r["run"]: r["state"] for r in json.loads(hpcdl("status", "--json").stdout)}
    assert time.monotonic() - t0 < 10  # two runs: one bounded sacct each, then squeue or scontrol
    assert rows == {done.run_id: "COMPLETED", later.run_id: "PENDING"}
    hpcdl("cancel", later.run_id)


def test_sweep_is_one_throttled_array_with_a_collect_job_after_it(on_cluster, hpcdl, runs_root, tmp_path):
    out = tmp_path / "report"
    result = hpcdl(
        "sweep",
        "--profile",
        "testcluster",
        "--nodes",
        "1,2",
        "--gpus",
        "1,2",
        "--throttle",
        "2",
        "--train-samples",
        "512",
        "--test-samples",
        "128",
        "--epochs",
        "1",
        "--study",
        "sw",
        "--time",
        "10",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    array = re.search(r"as job (\d+) ", result.stdout)[1]
    collect_job = re.search(r"collect  job (\d+) after it", result.stdout)[1]
    job = subprocess.run(["scontrol", "show", "job", "-o", collect_job], capture_output=True, text=True).stdout
    assert f"Dependency=afterany:{array}_*" in job or "Dependency=(null)" in job  # (null) once it is satisfied
    record = json.loads((runs_root / "sw" / f"sweep-{array}.json").read_text())
    assert (record["throttle"], record["collect_job_id"], len(record["runs"])) == (2, collect_job, 4)
    assert record["sbatch"]["nodes"] == "2" and record["sbatch"]["gres"] == "gpu:v100-sxm2:2"
    ids = sorted(json.loads((runs_root / "sw" / r / "submission.json").read_text())["job_id"] for r in record["runs"])
    assert ids == [f"{array}_{i}" for i in range(4)]  # one array, four tasks
    sacct = subprocess.run(["sacct", "-j", array, "-X", "-n", "-P", "-o", "JobID"], capture_output=True, text=True)
    assert sacct.stdout.split() == [] or all(x.startswith(f"{array}_") for x in sacct.stdout.split())
    assert sub.wait_job("slurm", collect_job, timeout_s=240) == "COMPLETED"
    assert sorted(p.name for p in out.iterdir()) == [
        "breakdown.csv",  # CPU workers time their phases
        "epochs.csv",
        "runs.csv",
        "scaling.csv",
        "scaling.md",
        "speedup.png",
        "throughput.png",
    ]
    assert (out / "scaling.md").read_text().startswith("# Scaling report\n\n4 run(s) found, 4 completed.\n")


def test_time_limit_checkpoints_requeues_and_resumes_with_every_epoch_once(on_cluster, hpcdl, runs_root):
    # 6 epochs of ~9 s cannot finish in one minute: the stop request comes 20 s before the limit
    result = hpcdl(
        "submit",
        "--profile",
        "testcluster",
        "--train-samples",
        "30000",
        "--test-samples",
        "256",
        "--epochs",
        "6",
        "--time",
        "1",
        "--wait",
    )
    assert result.exit_code == 0, result.output
    run = submitted_run(result, runs_root)
    log = run.job_log.read_text()
    assert "[hpcdl] time limit in 20 s: asked the workers to stop after this epoch" in log
    assert "[hpcdl] requeueing job" in log and "[hpcdl] attempt 2 of job" in log
    assert epochs_logged(run) == [1, 2, 3, 4, 5, 6]  # none lost, none run twice
    starts = [e for e in events(run) if e["event"] == "run_start"]
    stops = [e["status"] for e in events(run) if e["event"] == "run_stop"]
    assert (
        len(starts) == 2 and starts[1]["resumed_from_epoch"] == stops.count("requeue") * starts[1]["resumed_from_epoch"]
    )
    assert stops[-1] == "success" and stops.count("requeue") == 1
    row = col.collect([runs_root]).runs.iloc[0]
    assert (row["state"], row["epochs_done"], row["restarts"]) == ("COMPLETED", 6, 1)


def test_scontrol_requeue_mid_run_resumes_from_the_checkpoint(on_cluster, hpcdl, runs_root):
    result = hpcdl(
        "submit",
        "--profile",
        "testcluster",
        "--train-samples",
        "20000",
        "--test-samples",
        "256",
        "--epochs",
        "4",
        "--time",
        "10",
    )
    run = submitted_run(result, runs_root)
    job_id = json.loads(run.submission.read_text())["job_id"]
    wait_for(lambda: run.rank_events(0).exists() and epochs_logged(run) == [1], 90, "epoch 1")
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    assert sub.wait(run, timeout_s=240) == "COMPLETED"
    assert epochs_logged(run) == [1, 2, 3, 4]
    starts = [e for e in events(run) if e["event"] == "run_start"]
    assert [s.get("resumed_from_epoch") for s in starts][0] is None and starts[-1]["resumed_from_epoch"] >= 1


def test_a_killed_rank_fails_the_whole_job_quickly(on_cluster, hpcdl, runs_root):
    result = hpcdl(
        "submit",
        "--profile",
        "testcluster",
        "--dataset",
        "synthetic",
        "--model",
        "resnet18",
        "--gpus",
        "2",
        "--train-samples",
        "100000",
        "--epochs",
        "20",
        "--time",
        "10",
    )
    run = submitted_run(result, runs_root)
    wait_for(lambda: run.rank_events(1).exists() and run.rank_events(1).stat().st_size > 0, 90, "rank 1")

    def worker_pid():
        ps = subprocess.run(["pgrep", "-f", f"hpc_dl.jobs.ddp --run-dir {run.path}"], capture_output=True, text=True)
        pids = [int(p) for p in ps.stdout.split()]
        workers = [p for p in pids if "torch.distributed.run" not in Path(f"/proc/{p}/cmdline").read_text()]
        return workers[-1] if len(workers) == 2 else None

    pid = wait_for(worker_pid, 30, "two worker processes")
    os.kill(pid, 9)
    t0 = time.monotonic()
    state = wait_for(lambda: sub.state(run) in sub.TERMINAL and sub.state(run), 60, "the job to end")
    assert state == "FAILED" and time.monotonic() - t0 < 30
    row = [r for r in json.loads(hpcdl("status", "--json").stdout) if r["run"] == run.run_id][0]
    assert re.fullmatch(
        rf"rank [01] died on \S+ \(exit code -9\): Signal 9 \(SIGKILL\) received by PID {pid}", row["reason"]
    )
    assert col.collect([runs_root]).runs.iloc[0]["reason"] == row["reason"]


@pytest.mark.parametrize(
    "spec",
    [
        JobSpec(),
        JobSpec(nodes=1, gpus=2, partition="multigpu"),
        JobSpec(
            nodes=2,
            gpus=4,
            partition="multigpu",
            gpu_type="a100",
            sbatch={"account": "proj; id"},
            job_name="\"; rm -rf ~; echo '$(id)",
        ),
        JobSpec(nodes=2, gpus=3, partition="short"),
    ],
    ids=["gpu-1x1", "multigpu-1x2", "multigpu-2x4", "short-2x3"],
)
def test_discovery_scripts_pass_sbatch_test_only(on_cluster, spec):
    ctx = render.RenderContext(Path("/scratch/runs/x/RUN"), "RUN", "/opt/venv/bin/python")
    script = render.render(spec, profiles.load("discovery"), ctx).script
    out = subprocess.run(["sbatch", "--test-only"], input=script, text=True, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert re.match(
        rf"sbatch: Job \d+ to start at \S+ using \d+ processors on nodes \S+ in partition "
        rf"{spec.partition or 'gpu'}$",
        out.stderr.strip(),
    )
