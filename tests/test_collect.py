"""collect over hand-made run folders: exact tables, corrupt lines skipped and counted, failures listed."""

import json
import math
import re
from pathlib import Path

import pytest
from hpc_dl.analysis import collect as col
from hpc_dl.analysis import scaling

from hpc_dl.runs import RunDir
from hpc_dl.spec import JobSpec


def make_run(
    root: Path,
    run_id: str,
    gpus: int,
    throughputs: list[float],
    *,
    state: str | None = "COMPLETED",
    accuracy: float = 0.8,
    nodes: int = 1,
    batch: int = 64,
    extra_lines: str = "",
    failure: str | None = None,
    model: str = "mnist-cnn",
    phases: tuple | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    strategy: str = "ddp",
) -> RunDir:
    run = RunDir.create(root, "study", run_id)
    spec = JobSpec(
        strategy=strategy,
        nodes=nodes,
        gpus=gpus,
        epochs=len(throughputs),
        batch_size=batch,
        model=model,
        precision=precision,
    )
    run.spec.write_text(json.dumps(spec.to_dict()))
    world = nodes * gpus
    for rank in range(world):
        start = {"world_size": world, "device": device, "device_name": device, "global_batch_size": batch * world}
        events = [{"event": "run_start", "time": 0, **start}]
        for e, thr in enumerate(throughputs, start=1):
            events += epoch_events(e, thr, rank, world, accuracy, phases)
        if failure and rank == world - 1:
            events.append({"event": "run_stop", "time": 9, "status": "failed", "error": failure})
        lines = [json.dumps({**ev, "rank": rank}) for ev in events]
        run.rank_events(rank).write_text("\n".join(lines) + "\n" + extra_lines)
    if state is not None:
        run.exit.write_text(json.dumps({"state": state, "returncode": 0 if state == "COMPLETED" else 1}))
    if state == "COMPLETED":
        run.result.write_text(json.dumps({"status": "success", "test_accuracy": accuracy}))
    return run


def epoch_events(e: int, thr: float, rank: int, world: int, accuracy: float, phases: tuple | None) -> list[dict]:
    """One rank's epoch_stop and eval for epoch e, 1000 samples at `thr` samples/s."""
    samples = 1000
    timed = {}
    if phases:
        timed = {
            "rank_forward_time(s)": phases[0],
            "rank_backward_time(s)": phases[1],
            "rank_optimizer_time(s)": phases[2],
            "rank_samples": samples // world,
        }
    stop = {
        "event": "epoch_stop",
        "time": e,
        "epoch": e,
        "time(s)": samples / thr,
        "samples": samples,
        "throughput(samples/s)": thr,
        "loss": 1.0 / e,
        "accuracy": 0.5,
        "rank_data_time(s)": 0.1 * (rank + 1),
        **timed,
    }
    return [stop, {"event": "eval", "time": e, "epoch": e, "test_accuracy": accuracy, "test_samples": 100}]


@pytest.fixture
def study(tmp_path) -> Path:
    root = tmp_path / "runs"
    make_run(root, "a-1", 1, [50.0, 100.0, 100.0])  # epoch 1 is warm-up: 100 samples/s
    make_run(
        root,
        "a-2",
        2,
        [90.0, 180.0, 180.0],
        accuracy=0.75,
        extra_lines='{"event": "epoch_stop", "epo\n\x00garbage\n[1, 2]\n',
    )  # 3 bad lines x 2 ranks
    make_run(root, "a-4", 4, [100.0, 250.0, 350.0])  # mean of 250 and 350 = 300
    make_run(root, "b-2", 2, [10.0, 20.0], state="FAILED", failure="RuntimeError: boom")
    make_run(root, "c-2", 2, [10.0], state=None)  # still running, or died without a record
    return root / "study"


def test_scaling_table_exact(study):
    report = col.collect([study])
    s = report.scaling
    assert list(s["workers"]) == [1, 2, 4]
    assert list(s["throughput"]) == [100.0, 180.0, 300.0]
    assert list(s["time_per_epoch_s"]) == pytest.approx([10.0, 1000 / 180, (4.0 + 1000 / 350) / 2])
    assert list(s["speedup"]) == pytest.approx([1.0, 1.8, 3.0])
    assert list(s["efficiency"]) == pytest.approx([1.0, 0.9, 0.75])
    assert math.isnan(s["karp_flatt"][0])
    assert list(s["karp_flatt"][1:]) == pytest.approx([(1 / 1.8 - 1 / 2) / (1 - 1 / 2), (1 / 3 - 1 / 4) / (1 - 1 / 4)])
    assert list(s["test_accuracy"]) == [0.8, 0.75, 0.8]
    assert set(s["baseline_run"]) == {"a-1"}
    assert list(s["timed_epochs"]) == [2, 2, 2]


def test_corrupt_lines_are_skipped_and_counted(study):
    report = col.collect([study])
    assert report.skipped_lines == 6
    assert "Skipped 6 corrupt or truncated log line(s)." in report.markdown


def test_failed_and_unfinished_runs_are_listed_with_state_and_reason(study):
    report = col.collect([study])
    bad = report.not_completed.set_index("run")
    assert bad.loc["b-2", "state"] == "FAILED"
    assert bad.loc["b-2", "reason"] == "rank 1: RuntimeError: boom"
    assert bad.loc["c-2", "state"] == "UNFINISHED"
    assert bad.loc["c-2", "reason"] == "1 of 1 epochs logged; no exit record"
    md = report.markdown
    assert re.search(r"\| b-2 +\| ddp +\| 2 +\| FAILED +\| unknown +\| rank 1: RuntimeError: boom", md)
    assert "By class: unfinished 1, unknown 1." in md
    assert md.startswith("# Scaling report\n\n5 run(s) found, 3 completed.\n")


def test_markdown_table_rows(study):
    lines = col.collect([study]).markdown.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| strategy"))
    assert lines[header + 2].split("|")[7:17] == [
        " 1         ",
        " 1       ",
        " 1      ",
        " 10.000           ",
        " 100.0       ",
        " -        ",
        " 1.000     ",
        " 1.000        ",
        " -              ",
        " 0.800      ",
    ]
    assert "- CPU-only: no GPU was found; each worker is a CPU process (gloo), not a GPU." in lines


def test_a_run_with_a_corrupt_spec_is_listed_not_fatal(study):
    broken = study / "zz-broken"
    (broken / "events").mkdir(parents=True)
    (broken / "spec.json").write_text('{"strategy": "ddp", "nod')
    report = col.collect([study])
    row = report.runs.set_index("run").loc["zz-broken"]
    assert (row["state"], row["reason"]) == ("CORRUPT", "unreadable spec.json")


def test_write_outputs(study, tmp_path):
    report = col.collect([study])
    written = col.write(report, tmp_path / "out")
    assert [p.name for p in written] == [
        "scaling.csv",
        "runs.csv",
        "epochs.csv",
        "scaling.md",
        "throughput.png",
        "speedup.png",
    ]
    assert (tmp_path / "out" / "speedup.png").read_bytes()[:4] == b"\x89PNG"
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left
    data = col.to_json(report)
    assert [r["workers"] for r in data["scaling"]] == [1, 2, 4]
    assert data["scaling"][0]["karp_flatt"] is None


def test_repeats_are_combined_by_median(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "r1", 1, [100.0])
    make_run(root, "r2", 1, [120.0])
    make_run(root, "r3", 1, [200.0])
    s = col.collect([root]).scaling
    assert (list(s["runs"]), list(s["throughput"])) == ([3], [120.0])


def test_a_gpu_run_and_a_cpu_run_of_one_point_are_not_pooled(tmp_path):
    """Issue #10: the device kind and the precision are part of the point, never repeats of one another."""
    root = tmp_path / "runs"
    make_run(root, "cpu", 1, [100.0])
    make_run(root, "gpu", 1, [5000.0], device="cuda")
    make_run(root, "gpu-bf16", 1, [9000.0], device="cuda", precision="bf16")
    report = col.collect([root])
    s = report.scaling.set_index(["device", "precision"])
    assert list(report.scaling["runs"]) == [1, 1, 1]
    assert s.loc[("cpu", "fp32"), "throughput"] == 100.0 and s.loc[("cuda", "fp32"), "throughput"] == 5000.0
    assert s.loc[("cuda", "bf16"), "throughput"] == 9000.0
    assert list(report.scaling["baseline_run"]) == ["gpu-bf16", "cpu", "gpu"]  # each its own baseline
    rows = [line for line in report.markdown.splitlines() if line.startswith("| ddp")]
    assert [(r.split("|")[6].strip(), r.split("|")[17].strip()) for r in rows] == [
        ("bf16", "cuda"),
        ("fp32", "cpu"),
        ("fp32", "cuda"),
    ]
    assert "ddp/mnist-cnn/bs 64/cuda: 1 worker(s), run gpu" in report.markdown


def test_groups_have_their_own_baseline(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "m1", 2, [100.0])
    make_run(root, "m2", 4, [150.0])
    make_run(root, "r1", 1, [10.0], model="resnet18")
    make_run(root, "r2", 2, [19.0], model="resnet18")
    s = col.collect([root]).scaling.set_index(["model", "workers"])
    assert s.loc[("mnist-cnn", 4), "speedup"] == 1.5 and s.loc[("mnist-cnn", 4), "efficiency"] == 0.75
    assert s.loc[("mnist-cnn", 4), "baseline_workers"] == 2
    assert s.loc[("resnet18", 2), "speedup"] == pytest.approx(1.9)


def test_karp_flatt_formula():
    import pandas as pd

    e = scaling.karp_flatt(pd.Series([1.0, 2.0, 1.0]), pd.Series([1.0, 2.0, 2.0]))
    assert math.isnan(e[0]) and e[1] == 0.0 and e[2] == 1.0


def test_repeats_give_a_t_interval_and_trim_drops_the_extremes(tmp_path):
    from scipy import stats

    root = tmp_path / "runs"
    for i, thr in enumerate([100.0, 110.0, 120.0]):
        make_run(root, f"r{i}", 1, [thr])
    s = col.collect([root]).scaling
    half = stats.t.ppf(0.975, 2) * 10.0 / 3**0.5
    assert (s["throughput"][0], s["runs"][0]) == (110.0, 3)
    assert (s["throughput_ci_low"][0], s["throughput_ci_high"][0]) == pytest.approx((110.0 - half, 110.0 + half))
    for i, thr in enumerate([50.0, 500.0]):
        make_run(root, f"x{i}", 1, [thr])
    untrimmed = col.collect([root]).scaling
    trimmed = col.collect([root], trim=True).scaling
    assert (untrimmed["runs"][0], trimmed["runs"][0]) == (5, 3)
    assert trimmed["throughput_ci_low"][0] == pytest.approx(110.0 - half)
    assert "the fastest and slowest of 5 or more repeats dropped (--trim)" in col.collect([root], trim=True).markdown


def test_include_warmup_times_epoch_one(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "w", 1, [50.0, 100.0])
    assert col.collect([root]).scaling["throughput"][0] == 100.0
    assert col.collect([root], include_warmup=True).scaling["throughput"][0] == 75.0
    assert "every epoch is timed (--include-warmup)" in col.collect([root], include_warmup=True).markdown


def test_weak_scaling_gustafson_fit_recovers_the_serial_fraction(tmp_path):
    root = tmp_path / "runs"
    for gpus, thr in ((1, 100.0), (2, 180.0), (4, 340.0)):  # S = q - 0.2 (q - 1)
        make_run(root, f"g{gpus}", gpus, [thr])
    report = col.collect([root])
    fit = report.fits.iloc[0]
    assert (fit["law"], fit["points"]) == ("Gustafson", 3)
    assert fit["serial_fraction"] == pytest.approx(0.2)
    assert fit["ci_low"] == pytest.approx(0.2, abs=1e-6) and fit["ci_high"] == pytest.approx(0.2, abs=1e-6)
    assert set(report.scaling["scaling"]) == {"weak"}
    assert "## Serial fraction (Gustafson's law, S = q - s (q - 1), least squares)" in report.markdown


def test_strong_scaling_groups_by_global_batch_and_fits_amdahl(tmp_path):
    root = tmp_path / "runs"
    for gpus in (1, 2, 4):  # global batch 64; S = 1 / (0.1 + 0.9 / q)
        make_run(root, f"a{gpus}", gpus, [100.0 / (0.1 + 0.9 / gpus)], batch=64 // gpus)
    weak = col.collect([root]).scaling
    strong = col.collect([root], scaling="strong")
    assert len(weak) == 3 and set(weak["speedup"]) == {1.0}  # three batch sizes: three groups of one
    assert list(strong.scaling["workers"]) == [1, 2, 4] and set(strong.scaling["global_batch_size"]) == {64}
    assert list(strong.scaling["speedup"]) == pytest.approx([1.0, 1 / 0.55, 1 / 0.325])
    fit = strong.fits.iloc[0]
    assert (fit["law"], fit["serial_fraction"]) == ("Amdahl", pytest.approx(0.1))
    assert "- Strong scaling: the global batch is fixed" in strong.markdown


def test_collect_scaling_flag_on_the_command_line(hpcdl, tmp_path):
    root = tmp_path / "runs"
    make_run(root, "a1", 1, [100.0])
    result = hpcdl("collect", str(root), "--scaling", "sideways", "--no-plots")
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: Invalid value for '--scaling': 'sideways' is not one of 'weak', 'strong'.\n",
    )


JOB_LOG_KILLED = """\
[1]:
  gloo RuntimeError: Connection closed by peer [127.0.0.1]:12345
Root Cause (first observed failure):
[0]:
  time      : 2026-11-22_05:11:25
  host      : n1
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 8111)  (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 8111
"""


@pytest.mark.parametrize(
    ("state", "job_log", "submitit_log", "expected"),
    [
        (
            "FAILED",
            JOB_LOG_KILLED,
            "",
            ("a rank died", "rank 1 died on n1 (exit code -9): Signal 9 (SIGKILL) received by PID 8111"),
        ),
        (
            "TERMINATED",
            "",
            "slurmstepd-n1: error: *** JOB 6 ON n1 CANCELLED AT 2026-11-22T05:07:05 DUE TO TIME LIMIT ***",
            (
                "time limit",
                "slurmstepd-n1: error: *** JOB 6 ON n1 CANCELLED AT 2026-11-22T05:07:05 DUE TO TIME LIMIT ***",
            ),
        ),
        (
            "TERMINATED",
            "",
            "slurmstepd: error: *** JOB 7 ON n2 CANCELLED AT 2026-11-22T05:07:05 DUE TO PREEMPTION ***",
            ("preempted", "slurmstepd: error: *** JOB 7 ON n2 CANCELLED AT 2026-11-22T05:07:05 DUE TO PREEMPTION ***"),
        ),
        (
            "FAILED",
            "[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            "",
            ("out of memory", "[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
        ),
        (
            "FAILED",
            "torch.distributed.elastic.rendezvous.api.RendezvousTimeoutError: timed out",
            "",
            (
                "rendezvous or collective timeout",
                "torch.distributed.elastic.rendezvous.api.RendezvousTimeoutError: timed out",
            ),
        ),
        (
            "FAILED",
            "[rank 0] ERROR failed: mnist not found under /data: Dataset not found.",
            "",
            ("bad input", "[rank 0] ERROR failed: mnist not found under /data: Dataset not found."),
        ),
        ("TIMEOUT", "", "", ("time limit", "SLURM state TIMEOUT")),
        ("OUT_OF_MEMORY", "", "", ("out of memory", "SLURM state OUT_OF_MEMORY")),
        ("FAILED", "something else entirely", "", ("unknown", None)),
    ],
    ids=[
        "killed",
        "time-limit-log",
        "preempted",
        "oom",
        "rendezvous",
        "bad-input",
        "timeout-state",
        "oom-state",
        "unknown",
    ],
)
def test_failures_are_classified_with_the_line_that_shows_it(tmp_path, state, job_log, submitit_log, expected):
    from hpc_dl import triage

    run = RunDir.create(tmp_path, "s", "r")
    run.job_log.write_text(job_log)
    (run.submitit / "7_0_log.out").write_text(submitit_log)
    assert triage.classify(run, state) == expected


def test_a_cancelled_run_is_classified_cancelled(tmp_path):
    from hpc_dl import triage

    run = RunDir.create(tmp_path, "s", "r")
    run.cancel.write_text("{}")
    assert triage.classify(run, "TERMINATED") == ("cancelled", "cancel.json: cancelled by hpcdl cancel")


def test_breakdown_splits_backward_into_compute_and_communication(tmp_path):
    root = tmp_path / "runs"
    # 1 worker: 1000 samples, backward 2.0 s (2 ms/sample); 2 workers: 500 samples/rank, backward 1.6 s (3.2 ms/sample)
    make_run(root, "b1", 1, [100.0], phases=(1.0, 2.0, 0.5))
    make_run(root, "b2", 2, [180.0], phases=(0.5, 1.6, 0.25))
    b = col.collect([root]).breakdown.set_index("workers")
    assert b.loc[1, "communication_s"] == 0.0 and b.loc[1, "backward_compute_s"] == 2.0
    assert b.loc[2, "communication_s"] == pytest.approx(0.6)  # (3.2 - 2.0) ms x 500 samples
    assert b.loc[2, "backward_compute_s"] == pytest.approx(1.0)
    assert b.loc[2, "data_s"] == pytest.approx(0.2)  # the slowest rank's loader wait
    assert b.loc[2, "other_s"] == pytest.approx(1000 / 180 - 0.2 - 0.5 - 1.6 - 0.25)
    assert list(b["bound"]) == ["compute", "compute"]


def test_breakdown_says_communication_bound(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "c1", 1, [100.0], phases=(0.2, 0.4, 0.1))
    make_run(root, "c4", 4, [120.0], phases=(0.05, 1.5, 0.025))
    report = col.collect([root])
    assert list(report.breakdown["bound"]) == ["compute", "communication"]
    assert "- ddp mnist-cnn: communication-bound at 4 worker(s) on 1 node(s)." in report.markdown


def make_script_run(root: Path, run_id: str, gpus: int, wall: float, start: dict | None = None) -> RunDir:
    """A --script run: a silent one (no events; its wall time from exit.json), or one whose report.start()
    said only `start` and reported no epoch."""
    run = RunDir.create(root, "study", run_id)
    run.spec.write_text(json.dumps(JobSpec(gpus=gpus, script="train.py").to_dict()))
    if start is not None:
        run.rank_events(0).write_text(json.dumps({"event": "run_start", "time": 0, "rank": 0, **start}) + "\n")
    run.exit.write_text(json.dumps({"state": "COMPLETED", "returncode": 0, "started": 100.0, "ended": 100.0 + wall}))
    return run


def test_a_script_run_with_unknown_batch_gets_its_own_row_and_the_rest_is_unchanged(hpcdl, tmp_path):
    root = tmp_path / "runs"
    make_run(root, "a-1", 1, [50.0, 100.0, 100.0])
    make_run(root, "a-2", 2, [90.0, 180.0, 180.0])
    before = col.collect([root / "study"]).markdown.splitlines()
    make_script_run(root, "s-2", 2, 7.5)  # silent: no model, dataset or batch
    make_script_run(root, "t-1", 1, 3.0, {"model": "mynet", "world_size": 1})  # a model, no batch, no epoch
    result = hpcdl("collect", str(root / "study"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [re.sub(r" +", " ", line) for line in _scaling_rows(lines)] == [
        "| ddp | - | mnist-cnn | fashion-mnist | 64 | fp32 | 1 | 1 | 1 | 10.000 | 100.0 | - | 1.000 | 1.000 | - "
        "| 0.800 | cpu |",
        "| ddp | - | mnist-cnn | fashion-mnist | 64 | fp32 | 2 | 1 | 1 | 5.556 | 180.0 | - | 1.800 | 0.900 | 0.111 "
        "| 0.800 | cpu |",
        "| ddp | - | mynet | - | - | - | 1 | 1 | 1 | 3.000 | - | - | - | - | - | - | - |",
        "| ddp | - | train.py | - | - | - | 2 | 1 | 1 | 7.500 | - | - | - | - | - | - | - |",
    ]
    assert [line for line in _scaling_rows(lines) if "mnist-cnn" in line] == _scaling_rows(before)
    assert lines[2] == "4 run(s) found, 4 completed."
    assert (
        "- Baseline: in each group, the point with the fewest workers: ddp/mnist-cnn/bs 64: 1 worker(s), run a-1; "
        "ddp/mynet/bs -: 1 worker(s), run t-1; ddp/train.py/bs -: 2 worker(s), run s-2" in lines
    )
    assert (tmp_path / "out" / "speedup.png").exists()


def _scaling_rows(lines: list[str]) -> list[str]:
    """The rows of a report's first table (the scaling table)."""
    header = next(i for i, line in enumerate(lines) if line.startswith("| strategy"))
    end = lines.index("", header)
    return lines[header + 2 : end]
