"""hpcdl on a real SLURM (tests/cluster/slurm.sh): two nodes on this host, accounting, fake GPUs.

Every test goes through hpcdl as a user would type it; only the faults are made by hand (a kill -9, a
scontrol requeue, a broken sacct).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hpc_dl.analysis import collect as col
from hpc_dl.analysis import cost

from hpc_dl import control, profiles, render
from hpc_dl import runs as runs_mod
from hpc_dl.spec import JobSpec
from tests.conftest import run_folders
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
    # both ranks on one node (whichever SLURM chose: a job another test left may still hold n1), GPUs 0 and 1
    host = start["hostname"]
    assert (start["world_size"], host in ("n1", "n2"), start["cuda_visible_devices"]) == (2, True, "0,1")

    two = hpcdl("submit", *SMALL, "--nodes", "2", "--gpus", "1", "--epochs", "2", "--exclusive", "--wait")
    assert two.exit_code == 0, two.output
    r2 = submitted_run(two, runs_root)
    hosts = {[e for e in events(r2, rank) if e["event"] == "run_start"][0]["hostname"] for rank in (0, 1)}
    assert hosts == {"n1", "n2"}  # torchrun rendezvoused across the two nodes
    assert "srun --nodes=2 --ntasks=2 --ntasks-per-node=1" in r2.script.read_text()

    assert control.state(r1) == control.state(r2) == "COMPLETED"
    report = col.collect([runs_root])
    assert [(r.workers, r.nodes) for r in report.scaling.itertuples()] == [(2, 1), (2, 2)]
    assert report.scaling["baseline_run"].tolist() == [r1.run_id, r1.run_id]
    # --exclusive: whole nodes, every core (16) and GPU (4 v100-sxm2 + 4 a100) of each, as SLURM gives them;
    # the exit record holds them and collect counts them: whole nodes cost whole nodes
    shared, whole = (runs_mod.read_json(r.exit)["allocation"] for r in (r1, r2))
    assert (shared["cpus"], shared["gpus"], shared["exclusive"], shared["node_names"]) == (2, 2, False, [host])
    assert (whole["cpus"], whole["gpus"], whole["exclusive"], whole["node_names"]) == (32, 16, True, ["n1", "n2"])
    assert report.scaling["exclusive"].tolist() == [False, True]
    assert report.runs.set_index("run").loc[r2.run_id, ["resource_units", "idle_units"]].tolist() == [16, 14]


def test_pending_running_cancelled_and_follow(on_cluster, hpcdl, runs_root):
    later = hpcdl("submit", *SMALL, "--sbatch", "begin=now+3600")
    pending = submitted_run(later, runs_root)
    assert wait_for(lambda: control.state(pending) == "PENDING", 20, "PENDING")
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
    assert control.state(run) == "RUNNING"
    table = hpcdl("status").stdout.splitlines()
    assert [line.split()[5] for line in table[1:]] == ["PENDING", "RUNNING"]
    assert hpcdl("cancel", run.run_id).stdout == f"cancelled run {run.run_id} (was RUNNING)\n"
    assert hpcdl("cancel", pending.run_id).stdout == f"cancelled run {pending.run_id} (was PENDING)\n"
    assert follow.wait(timeout=60) == 1
    assert follow.stderr.read() == f"[hpcdl] run {run.run_id}: CANCELLED\n"
    assert wait_for(lambda: control.state(pending) == "CANCELLED", 30, "the pending run to be CANCELLED")
    assert control.state(run) == "CANCELLED"


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
    # two runs: one bounded sacct each (1 s), then squeue or scontrol; the fake sacct would hang for 600 s
    assert time.monotonic() - t0 < 60
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
    assert control.wait_job("slurm", collect_job, timeout_s=240) == "COMPLETED"
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
    check_resource_hours(runs_root / "sw")


def check_resource_hours(study: Path) -> None:
    """Every array task held the largest shape, 2 nodes x 2 GPUs: resource-hours count its idle GPUs, from
    the allocation SLURM gave (exit.json) and the wall time; sacct's accounting comes with it."""
    report = col.collect([study])
    for row in report.runs.itertuples():
        held = runs_mod.read_json(Path(row.folder) / "exit.json")
        assert held["allocation"] == {
            "nodes": 2,
            "node_names": ["n1", "n2"],
            "gpus": 4,
            "cpus": 4,
            "exclusive": False,
            "source": "slurm",
        }
        assert held["attempts_wall_s"] == pytest.approx(held["ended"] - held["started"], abs=0.01)
        assert (row.resource, row.resource_units, row.idle_units) == ("gpu", 4, 4 - row.workers)
        assert row.resource_hours == pytest.approx(4 * held["attempts_wall_s"] / 3600)
        assert row.node_list == "n1,n2" and row.exclusive in (False,)
        # the test cluster gathers accounting (jobacct_gather/linux): sacct's MaxRSS and TotalCPU, seff-style
        assert row.max_rss_mib > 0 and row.total_cpu_s > 0 and 0 < row.cpu_efficiency <= 1, row
    runs = [runs_mod.RunDir(Path(f)) for f in report.runs["folder"]]
    used = control.usage(runs, [runs_mod.read_json(r.submission) for r in runs])  # the real sacct's answer
    assert all(u["alloc_cpus"] == 4 and u["elapsed_s"] > 0 for u in used), used
    one = report.runs[report.runs["workers"] == 1].iloc[0]
    assert (
        cost.idle_sentences(report.runs)[0]
        == f"sw: the 1-GPU point held 3 idle GPUs (of 4): {one.idle_hours:.3g} GPU-hours"
    )
    assert report.scaling["resource_hours"].sum() == pytest.approx(report.runs["resource_hours"].sum())


def warn(job_id: str) -> None:
    """What SLURM does `margin` seconds before the time limit (sbatch --signal=B:USR1@margin), done now:
    the test decides when the limit comes, not the machine's speed."""
    subprocess.run(["scancel", "--batch", "--signal=USR1", job_id], check=True, capture_output=True)


def restarts(job_id: str) -> int:
    """How often SLURM requeued a job, from scontrol (sacct on 22.05 has no Restarts field)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    return int(re.search(r"\bRestarts=(\d+)", out)[1])


def test_time_limit_warning_checkpoints_requeues_and_resumes_with_every_epoch_once(
    on_cluster, hpcdl, runs_root, monkeypatch
):
    monkeypatch.setenv("HPCDL_TEST_HOLD_AFTER_EPOCH", "1")  # the run waits after epoch 1 for the warning
    result = hpcdl(
        "submit", "--profile", "testcluster", "--train-samples", "20000", "--test-samples", "256", "--epochs", "4"
    )
    run = submitted_run(result, runs_root)
    job_id = json.loads(run.submission.read_text())["job_id"]
    assert json.loads(run.submission.read_text())["sbatch"]["signal"] == "B:USR1@300"
    wait_for(lambda: run.rank_events(0).exists() and epochs_logged(run) == [1], 90, "epoch 1")
    warn(job_id)
    assert control.wait(run, timeout_s=300) == "COMPLETED"
    log = run.job_log.read_text()
    assert "[hpcdl] SLURM's time-limit warning (SIGUSR1): asked the workers to checkpoint and stop" in log
    assert (
        f"[hpcdl] requeueing job {job_id}: the workers stopped" in log and f"[hpcdl] attempt 2 of job {job_id}" in log
    )
    assert epochs_logged(run) == [1, 2, 3, 4]  # none lost, none run twice
    starts = [e for e in events(run) if e["event"] == "run_start"]
    stops = [e["status"] for e in events(run) if e["event"] == "run_stop"]
    assert len(starts) == 2 and stops == ["requeue", "success"]
    assert restarts(job_id) == 1
    row = col.collect([runs_root]).runs.iloc[0]
    assert (row["state"], row["epochs_done"], row["restarts"]) == ("COMPLETED", 4, 1)


def test_a_requeue_in_an_array_takes_only_its_own_task(on_cluster, hpcdl, runs_root, monkeypatch):
    # four tasks: two of 1 epoch that complete, two of 3 epochs that get the time-limit warning; those wait
    # after epoch 1 until it comes (however fast this machine trains, the warning lands after epoch 1)
    monkeypatch.setenv("HPCDL_TEST_HOLD_AFTER_EPOCH", "1")
    result = hpcdl(
        "sweep", "--profile", "testcluster", "--gpus", "1", "--vary", "epochs=1,3", "--repeats", "2",
        "--throttle", "4", "--train-samples", "8000", "--test-samples", "256", "--time", "10",
        "--no-collect", "--study", "arr",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    array = re.search(r"as job (\d+) ", result.stdout)[1]
    record = json.loads((runs_root / "arr" / f"sweep-{array}.json").read_text())
    runs = [runs_mod.resolve(r, runs_root) for r in record["runs"]]
    short, long_ = runs[:2], runs[2:]
    assert [control.wait(r, timeout_s=240) for r in short] == ["COMPLETED", "COMPLETED"]
    kept = {p: p.read_bytes() for r in short for p in (r.result, r.exit)}
    for run in long_:
        wait_for(lambda r=run: r.rank_events(0).exists() and epochs_logged(r) == [1], 120, "epoch 1")
        warn(json.loads(run.submission.read_text())["job_id"])
    assert [control.wait(r, timeout_s=300) for r in long_] == ["COMPLETED", "COMPLETED"]
    assert [restarts(f"{array}_{i}") for i in (2, 3)] == [1, 1]  # each requeued alone, once
    assert {p: p.read_bytes() for p in kept} == kept  # the finished tasks were not run again
    for run in short:
        assert "attempt 2" not in run.job_log.read_text()
    for run in long_:
        assert epochs_logged(run) == [1, 2, 3]
        assert "[hpcdl] attempt 2 of job" in run.job_log.read_text()


def test_scontrol_requeue_mid_run_resumes_from_the_checkpoint(on_cluster, hpcdl, runs_root, monkeypatch):
    monkeypatch.setenv("HPCDL_TEST_HOLD_AT_STEP", "2:10")  # the ranks wait in epoch 2 for the requeue's SIGTERM
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
    wait_for(lambda: run.rank_events(0).exists() and epochs_logged(run) == [1], 240, "epoch 1")
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    assert control.wait(run, timeout_s=240) == "COMPLETED"
    assert epochs_logged(run) == [1, 2, 3, 4]
    starts = [e for e in events(run) if e["event"] == "run_start"]
    assert [s.get("resumed_from_epoch") for s in starts][0] is None and starts[-1]["resumed_from_epoch"] >= 1
    assert starts[-1]["resumed_at_step"] >= 1  # the workers got SIGTERM, checkpointed the step, and resumed there
    assert "stop requested (SIGTERM (preempted)): checkpointed and stopped at step" in run.rank_log(0).read_text()


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
    state = wait_for(lambda: control.state(run).is_terminal and control.state(run), 60, "the job to end")
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
            exclusive=True,
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


def test_doctor_reports_the_profile_line_that_fails(on_cluster, hpcdl, runs_root, tmp_path, monkeypatch):
    profiles_dir = tmp_path / "profiles"
    profiles_dir.mkdir()
    text = (Path(__file__).parent / "cluster" / "profiles" / "testcluster.yaml").read_text()
    (profiles_dir / "broken.yaml").write_text(
        text.replace("name: testcluster", "name: broken") + "modules: [cuda/12.1]\n"
    )
    monkeypatch.setenv("HPCDL_PROFILES", str(profiles_dir))
    result = hpcdl("doctor", "--profile", "broken", "--partition", "gpu", "--timeout", "240")
    assert result.exit_code == 1, result.output
    rows = result.stdout.splitlines()
    assert rows[0] == "submitting a 5-minute check job on profile broken ..."
    assert re.match(
        r"setup +FAIL +job\.sh line \d+: module load cuda/12\.1: module: command not found +fix the", rows[2]
    )
    assert [r.split()[:2] for r in rows[3:6]] == [["python", "ok"], ["torch", "ok"], ["cuda", "FAIL"]]  # fake GPUs
    assert rows[-1].startswith("(log: ") and "/doctor/" in rows[-1]


def test_rerun_submits_only_the_points_that_did_not_complete(on_cluster, hpcdl, runs_root, tmp_path):
    result = hpcdl(
        "sweep", *SMALL, "--gpus", "1,2", "--epochs", "1", "--throttle", "1", "--study", "re", "--no-collect"
    )
    assert result.exit_code == 0, result.output
    array = re.search(r"as job (\d+) ", result.stdout)[1]
    first, second = [
        runs_mod.resolve(r, runs_root)
        for r in json.loads((runs_root / "re" / f"sweep-{array}.json").read_text())["runs"]
    ]
    assert hpcdl("cancel", second.run_id).exit_code == 0  # still pending behind the throttle
    assert (control.wait(first, timeout_s=240), control.wait(second, timeout_s=60)) == ("COMPLETED", "CANCELLED")
    kept = first.submission.read_bytes()
    out = tmp_path / "report"
    result = hpcdl("rerun", "re", "--out", str(out), "--wait")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == ["study re: 2 run(s), 1 to run again", f"  {second.run_id} (CANCELLED)"]
    assert first.submission.read_bytes() == kept  # the completed point was left alone
    assert (second.path / "attempts" / "1" / "cancel.json").exists() and not second.cancel.exists()
    assert control.state(second) == "COMPLETED"
    assert (out / "scaling.md").read_text().startswith("# Scaling report\n\n2 run(s) found, 2 completed.\n")


def shim(bin_dir: Path, name: str, body: str) -> Path:
    """A fake `name` first on PATH: `body` is its shell script; $REAL is the real command, $LOG its log."""
    real = shutil.which(name)
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / f"{name}.log"
    (bin_dir / name).write_text(f'#!/bin/sh\nREAL={real}\nLOG={log}\necho "$@" >> "$LOG"\n{body}\n')
    (bin_dir / name).chmod(0o755)
    return log


def test_scontrol_is_asked_only_about_our_jobs(on_cluster, hpcdl, runs_root, tmp_path, monkeypatch):
    later = ["--sbatch", "begin=now+3600"]
    sweep = hpcdl("sweep", *SMALL, *later, "--gpus", "1,2", "--study", "sc", "--no-collect")
    assert sweep.exit_code == 0, sweep.output
    array = re.search(r"as job (\d+) ", sweep.stdout)[1]
    single = submitted_run(hpcdl("submit", *SMALL, *later, "--study", "sc"), runs_root)
    job = json.loads(single.submission.read_text())["job_id"]
    bin_dir = tmp_path / "bin"
    shim(bin_dir, "sacct", "exit 1")  # accounting and squeue fail: only scontrol can tell
    shim(bin_dir, "squeue", "exit 1")
    log = shim(bin_dir, "scontrol", 'exec "$REAL" "$@"')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    rows = json.loads(hpcdl("status", "--json").stdout)
    assert sorted((r["job_id"], r["state"]) for r in rows) == sorted(
        [(f"{array}_0", "PENDING"), (f"{array}_1", "PENDING"), (job, "PENDING")]
    )
    assert sorted(log.read_text().splitlines()) == sorted([f"show job -o {array}", f"show job -o {job}"])


def test_sbatch_is_tried_again_after_a_socket_timeout_but_not_after_a_refusal(
    on_cluster, hpcdl, runs_root, tmp_path, monkeypatch
):
    monkeypatch.setenv("HPCDL_SBATCH_RETRY_S", "0.01")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    timeout = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"
    log = shim(
        tmp_path / "bin",
        "sbatch",
        f'[ -s "$LOG.1" ] && exec "$REAL" "$@"\necho 1 > "$LOG.1"\necho "{timeout}" >&2\nexit 1',
    )
    result = hpcdl("submit", *SMALL, "--sbatch", "begin=now+3600")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        rf"\[hpcdl\] sbatch failed \({timeout}\); trying again in 0\.0 s \(attempt 2 of 5\)\n", result.stderr
    )
    assert len(log.read_text().splitlines()) == 2  # one failure, then the real sbatch
    run = submitted_run(result, runs_root)
    assert control.state(run) == "PENDING"

    refused = "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"
    log = shim(tmp_path / "bin", "sbatch", f'echo "{refused}" >&2\nexit 1')
    log.unlink()  # the same log as the first sbatch shim's
    result = hpcdl("submit", *SMALL, "--study", "refused")
    assert (result.exit_code, result.stderr) == (1, f"Error: sbatch refused the job: {refused}\n")
    assert len(log.read_text().splitlines()) == 1  # never tried again
    assert not (runs_root / "refused").exists() or run_folders(runs_root / "refused") == []


def test_a_sweep_past_max_array_size_is_several_arrays_that_status_cancel_and_rerun_treat_as_one(
    on_cluster, hpcdl, runs_root, tmp_path, monkeypatch
):
    # the test cluster's MaxArraySize is 5 (tests/cluster/slurm.sh): 7 points are an array of 5, then one of 2.
    # The runs wait after epoch 1 (until a stop that only the cancel brings), so none ends before the cancel.
    assert re.search(
        r"MaxArraySize\s*=\s*5\n", subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    )
    monkeypatch.setenv("HPCDL_TEST_HOLD_AFTER_EPOCH", "1")
    out = tmp_path / "report"
    tiny = ["--train-samples", "256", "--test-samples", "64", "--epochs", "2", "--time", "10"]
    result = hpcdl(
        "sweep", "--profile", "testcluster", *tiny, "--gpus", "1", "--repeats", "7", "--study", "big", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    first = re.search(r"as job (\d+) ", result.stdout)[1]
    record = json.loads((runs_root / "big" / f"sweep-{first}.json").read_text())
    arrays, collect_job = record["arrays"], record["collect_job_id"]
    assert len(arrays) == 2 and arrays[0] == first and len(record["runs"]) == 7
    assert (
        f"  arrays   {arrays[0]}, {arrays[1]} (the cluster's MaxArraySize is smaller: one after the other)"
        in result.stdout.splitlines()
    )
    subs = [json.loads((runs_root / "big" / r / "submission.json").read_text()) for r in record["runs"]]
    assert [(s["job_id"], s["array"]) for s in subs] == [(f"{arrays[0]}_{i}", arrays[0]) for i in range(5)] + [
        (f"{arrays[1]}_{i}", arrays[1]) for i in range(2)
    ]

    def dependency(job_id):
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
        return re.search(r"\bDependency=(\S+)", out)[1]

    assert dependency(arrays[1]) == f"afterany:{arrays[0]}_*(unfulfilled)"  # the second array after the first
    assert dependency(collect_job) == f"afterany:{arrays[0]}_*(unfulfilled),afterany:{arrays[1]}_*(unfulfilled)"

    rows = json.loads(hpcdl("status", "--json").stdout)
    assert sorted(r["job_id"] for r in rows) == sorted(s["job_id"] for s in subs)
    assert {r["state"] for r in rows} <= {"PENDING", "RUNNING"}

    cancelled = hpcdl("cancel", "big")
    assert cancelled.exit_code == 0, cancelled.output
    lines = cancelled.stdout.splitlines()
    assert lines[0] == f"study big: cancelled 7 run(s) and collect job(s) {collect_job}"
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(record["runs"])
    runs = [runs_mod.resolve(r, runs_root) for r in record["runs"]]
    assert [control.wait(r, timeout_s=60) for r in runs] == ["CANCELLED"] * 7
    assert control.wait_job("slurm", collect_job, timeout_s=60) == "CANCELLED"

    monkeypatch.delenv("HPCDL_TEST_HOLD_AFTER_EPOCH")  # now they may run to the end
    result = hpcdl("rerun", "big", "--out", str(out), "--wait")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "study big: 7 run(s), 7 to run again"
    assert re.match(r"  arrays   \d+, \d+ \(the cluster's MaxArraySize", [x for x in lines if "arrays" in x][0])
    assert [control.state(r) for r in runs] == ["COMPLETED"] * 7
    assert (out / "scaling.md").read_text().startswith("# Scaling report\n\n7 run(s) found, 7 completed.\n")
