"""Every strategy: its rendered script (golden), its bad input (exact text), and a real 2-worker run on CPU
through `hpcdl submit`, on the embedded default and on the real SLURM."""

import importlib.util
import json
import os
import shutil

import pytest
from hpc_dl.analysis import collect as col

from hpc_dl import control, preflight, profiles, render
from hpc_dl import runs as runs_mod
from hpc_dl import submit as sub
from hpc_dl.errors import MissingDependency, SpecError
from hpc_dl.spec import JobSpec
from tests.conftest import run_folders
from tests.test_real_runs import submitted_run
from tests.test_render import CTX, check_golden

HOROVOD = importlib.util.find_spec("horovod") is not None
needs_horovod = pytest.mark.skipif(
    not HOROVOD and not os.environ.get("CI"), reason="horovod is not built: make horovod"
)

GOLDEN = {
    "local-dp-1x2": ("local", JobSpec(strategy="dp", gpus=2)),
    "local-hogwild-1x2": ("local", JobSpec(strategy="hogwild", gpus=2)),
    "local-fsdp-1x2": ("local", JobSpec(strategy="fsdp", gpus=2, precision="bf16")),
    "local-pipeline-1x2": ("local", JobSpec(strategy="pipeline", gpus=2, model="resnet18", microbatches=8)),
    "local-psgd-1x2": ("local", JobSpec(strategy="psgd", gpus=2, average="every:10")),
    "local-horovod-1x2": ("local", JobSpec(strategy="horovod", gpus=2, compression="fp16")),
    "local-kfold-1x1": ("local", JobSpec(strategy="kfold", folds=5, fold=2, scheduler="cosine")),
    "discovery-psgd-2x4": ("discovery", JobSpec(strategy="psgd", nodes=2, gpus=4, partition="multigpu")),
    "discovery-horovod-2x4": (
        "discovery",
        JobSpec(strategy="horovod", nodes=2, gpus=4, partition="multigpu", compression="fp16", backward_passes=2),
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_strategy_scripts_match_golden(name):
    profile_name, spec = GOLDEN[name]
    check_golden(name, render.render(spec, profiles.load(profile_name), CTX).script)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strategy": "hogwild", "nodes": 2}, "invalid nodes: 2 (strategy 'hogwild' runs on at most 1 node)"),
        ({"strategy": "dp", "nodes": 2}, "invalid nodes: 2 (strategy 'dp' runs on at most 1 node)"),
        (
            {"strategy": "pipeline", "gpus": 4, "stages": 2},
            "invalid stages: 2 (pipeline runs one stage per rank: 4 rank(s) need 4 stages)",
        ),
        ({"strategy": "pipeline", "gpus": 1}, "pipeline needs at least 2 stages, so at least 2 workers (got 1)"),
        (
            {"strategy": "pipeline", "gpus": 2, "model": "inception_v3"},
            "model 'inception_v3' cannot be split into pipeline stages (choose from mnist-cnn, resnet18, resnet50, "
            "alexnet, vgg11, vgg16, vgg19, mobilenet_v2, gpt-tiny, gpt-small, gpt-medium)",
        ),
        (
            {"strategy": "psgd", "average": "sometimes"},
            "invalid average 'sometimes' (use once, or every:K for every K steps, e.g. every:10)",
        ),
        (
            {"strategy": "psgd", "average": "every:0"},
            "invalid average 'every:0' (use once, or every:K for every K steps, e.g. every:10)",
        ),
        ({"strategy": "horovod", "compression": "int8"}, "invalid compression 'int8' (choose from none, fp16)"),
        ({"strategy": "ddp", "compression": "fp16"}, "--compression applies to strategy 'horovod' only, not 'ddp'"),
        ({"strategy": "ddp", "microbatches": 4}, "--microbatches applies to strategy 'pipeline' only, not 'ddp'"),
        ({"strategy": "kfold"}, "strategy 'kfold' needs folds and fold (hpcdl kfold sets them)"),
        ({"strategy": "kfold", "folds": 3, "fold": 3}, "invalid fold: 3 of 3 (need folds >= 2 and 0 <= fold < folds)"),
        ({"scheduler": "linear"}, "invalid scheduler 'linear' (choose from none, cosine, step)"),
    ],
)
def test_strategy_bad_input(changes, message):
    with pytest.raises(SpecError) as info:
        JobSpec(**changes)
    assert str(info.value) == message


def test_fsdp_with_a_precision_the_device_lacks(hpcdl, runs_root):
    result = hpcdl("submit", "--profile", "local", "--strategy", "fsdp", "--gpus", "2", "--precision", "fp16")
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: invalid precision: 'fp16' (partition 'local' has no GPUs; use fp32 or bf16 on CPUs)\n",
    )
    assert run_folders(runs_root) == []


def test_horovod_not_installed_says_how_to_install(hpcdl, runs_root, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("horovod") else real(name, *a)
    )
    result = hpcdl("submit", "--profile", "local", "--strategy", "horovod", "--gpus", "2")
    prefix = __import__("sys").prefix
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: strategy 'horovod' needs horovod, which is not installed in {prefix}: run `make horovod` "
        "(builds Horovod 0.28.1 against this torch once, ~6 min)\n",
    )
    assert run_folders(runs_root) == []
    # the dry run still shows the script (a login node need not have horovod)
    assert hpcdl("submit", "--profile", "local", "--strategy", "horovod", "--dry-run").exit_code == 0


def test_psgd_without_mpirun(hpcdl, runs_root, monkeypatch):
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "mpirun" else real(name, *a, **k))
    result = hpcdl("submit", "--profile", "local", "--strategy", "psgd", "--gpus", "2")
    assert (result.exit_code, result.stderr) == (
        1,
        "Error: strategy 'psgd' needs mpirun, which is not on PATH: install OpenMPI (Debian: openmpi-bin "
        "libopenmpi-dev; make does) and mpi4py\n",
    )
    assert run_folders(runs_root) == []


def test_requirements_are_not_checked_where_the_site_python_runs_the_job(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    preflight.check_requirements(JobSpec(strategy="horovod", partition="multigpu"), profiles.load("discovery"))
    with pytest.raises(MissingDependency):
        preflight.check_requirements(JobSpec(strategy="horovod"), profiles.load("local"))


DP_NOTE = "dp on a node without GPUs runs on one CPU device, whatever --gpus says"
RUNS = {
    "dp": ["--strategy", "dp"],
    "hogwild": ["--strategy", "hogwild"],
    "fsdp": ["--strategy", "fsdp", "--precision", "bf16"],
    "pipeline": ["--strategy", "pipeline", "--microbatches", "4"],
    "psgd-once": ["--strategy", "psgd", "--average", "once"],
    "psgd-every": ["--strategy", "psgd", "--average", "every:4"],
    "horovod-none": ["--strategy", "horovod", "--compression", "none"],
    "horovod-fp16": ["--strategy", "horovod", "--compression", "fp16"],
}
SMALL = [
    "--gpus",
    "2",
    "--train-samples",
    "1024",
    "--test-samples",
    "256",
    "--batch-size",
    "32",
    "--epochs",
    "2",
    "--time",
    "10",
]


ONE_GO = ["run_start", "epoch_stop", "eval", "epoch_stop", "eval", "run_stop"]
RESUMED = ["run_start", "epoch_stop", "eval", "run_stop", "run_start", "epoch_stop", "eval", "run_stop"]


def check_run(run, name, shown=ONE_GO, samples=1024, tests=256):
    """Every rank's events (in one go, or stopped after epoch 1 and resumed), every image once per
    epoch, and collect's row: what a finished 2-epoch run of the strategy leaves."""
    spec = json.loads(run.spec.read_text())
    ranks = 1 if name == "dp" else 2  # dp is one process; on CPU it uses one device, and says so
    assert len(run.event_files()) == ranks
    for rank in range(ranks):
        events = [json.loads(x) for x in run.rank_events(rank).read_text().splitlines()]
        assert [e["event"] for e in events] == shown
        assert events[0]["strategy"] == spec["strategy"] and events[-1]["status"] == "success"
        assert [e["epoch"] for e in events if e["event"] == "epoch_stop"] == [1, 2]
    first = [json.loads(x) for x in run.rank_events(0).read_text().splitlines()]
    # every image once per epoch (the pipeline drops the last partial batch to keep micro-batch shapes fixed)
    assert [e["samples"] for e in first if e["event"] == "epoch_stop"] == [samples, samples]
    assert [e["test_samples"] for e in first if e["event"] == "eval"] == [tests, tests]
    if name == "dp":
        assert first[0]["world_size"] == 1 and first[0]["note"] == DP_NOTE
    row = col.collect([run.path]).runs.iloc[0]
    assert (row["strategy"], row["epochs_done"]) == (spec["strategy"], 2)
    return row


def needs_horovod_built(name: str) -> None:
    if name.startswith("horovod") and not HOROVOD:
        if os.environ.get("CI"):
            pytest.fail("horovod is not built (make test builds it)")
        pytest.skip("horovod is not built: make horovod")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["psgd-once"])  # the other strategies run in the resume test below
def test_strategy_runs_two_workers_locally(hpcdl, runs_root, name):
    result = hpcdl("submit", "--profile", "local", *RUNS[name], *SMALL, "--wait")
    assert result.exit_code == 0, result.output + runs_mod.RunDir(runs_root).path.as_posix()
    assert check_run(submitted_run(result, runs_root), name)["state"] == "COMPLETED"


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.parametrize("name", ["dp", "hogwild", "fsdp", "pipeline", "psgd-every", "horovod-fp16"])
def test_strategy_runs_two_workers_on_slurm(on_cluster, hpcdl, runs_root, name):
    needs_horovod_built(name)
    result = hpcdl("submit", "--profile", "testcluster", *RUNS[name], *SMALL, "--wait")
    assert result.exit_code == 0, result.output
    run = submitted_run(result, runs_root)
    assert control.state(run) == "COMPLETED"
    assert check_run(run, name)["state"] == "COMPLETED"


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.parametrize("strategy", ["psgd", pytest.param("horovod", marks=needs_horovod)])
def test_mpi_strategies_across_two_nodes_on_slurm_without_ssh(on_cluster, hpcdl, runs_root, strategy):
    result = hpcdl(
        "submit",
        "--profile",
        "testcluster",
        "--strategy",
        strategy,
        "--nodes",
        "2",
        "--gpus",
        "1",
        "--train-samples",
        "1024",
        "--test-samples",
        "256",
        "--epochs",
        "1",
        "--time",
        "5",
        "--wait",
    )
    assert result.exit_code == 0, result.output
    run = submitted_run(result, runs_root)
    starts = [json.loads(run.rank_events(r).read_text().splitlines()[0]) for r in (0, 1)]
    assert {s["hostname"] for s in starts} == {"n1", "n2"}  # mpirun started a rank on each node of the allocation
    assert {s["launcher"] for s in starts} == {"mpirun"}  # horovod across nodes too: mpirun, never ssh


@pytest.mark.slow
def test_kfold_runs_every_fold_as_one_array_and_reports_mean_and_std(hpcdl, runs_root, tmp_path):
    out = tmp_path / "kf"
    result = hpcdl(
        "kfold",
        "--profile",
        "local",
        "--folds",
        "3",
        "--models",
        "mnist-cnn",
        "--schedulers",
        "none,cosine",
        "--train-samples",
        "600",
        "--test-samples",
        "64",
        "--epochs",
        "1",
        "--throttle",
        "2",
        "--study",
        "kf",
        "--out",
        str(out),
        "--wait",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("submitted kfold of 6 run(s) as job ")
    report = col.collect([runs_root / "kf"])
    k = report.kfold
    assert list(zip(k["model"], k["scheduler"], k["folds"], strict=True)) == [
        ("mnist-cnn", "cosine", 3),
        ("mnist-cnn", "none", 3),
    ]
    held_out = sorted(
        json.loads(r.rank_events(0).read_text().splitlines()[0])["held_out"]
        for r in runs_mod.find_runs([runs_root / "kf"])
    )
    assert held_out == [200] * 6  # 600 images, 3 folds
    assert (k["speedup"] > 1.2).all()  # two folds at a time
    assert report.scaling.empty
    md = (out / "scaling.md").read_text()
    assert "## K-fold cross-validation" in md and (out / "kfold.csv").exists()


def test_kfold_bad_input(hpcdl, runs_root):
    for args, message in [
        (["--folds", "1"], "Error: invalid folds: 1 (must be an integer >= 2)"),
        (
            ["--models", "mnist-cnn,nope"],
            "Error: unknown model 'nope' (choose from alexnet, "
            "fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn, googlenet, gpt-medium, gpt-small, gpt-tiny, "
            "inception_v3, "
            "mnist-cnn, mobilenet_v2, resnet18, resnet50, vgg11, vgg16, vgg19)",
        ),
        (["--schedulers", "none,warm"], "Error: invalid scheduler 'warm' (choose from none, cosine, step)"),
    ]:
        result = hpcdl("kfold", "--profile", "local", *args)
        assert (result.exit_code, result.stderr) == (2, message + "\n"), args
    assert run_folders(runs_root) == []


RESUME = ["ddp", "fsdp", "pipeline", "psgd-every", "horovod-none", "hogwild", "dp"]


@pytest.mark.slow
@pytest.mark.parametrize("name", RESUME)
def test_every_strategy_checkpoints_stops_on_request_and_resumes(runs_root, name):
    """Every strategy with 2 workers on CPU, and what a requeue does, without the scheduler: the job script
    with a stop request in place stops after epoch 1 (checkpointed); run again, it resumes and logs epoch
    2 only, and the run reads as any finished 2-epoch run of the strategy."""
    import subprocess

    needs_horovod_built(name)
    flags = RUNS.get(name, ["--strategy", name])
    args = dict(zip(flags[::2], flags[1::2], strict=True))
    spec = JobSpec(
        strategy=args["--strategy"],
        gpus=2,
        train_samples=512,
        test_samples=128,
        batch_size=32,
        epochs=2,
        average=args.get("--average"),
        compression=args.get("--compression"),
        precision=args.get("--precision", "fp32"),
        microbatches=int(args["--microbatches"]) if "--microbatches" in args else None,
    )
    run, _ = sub._prepare(spec, profiles.load("local"), runs_root, "resume", None)
    run.stop.write_text('{"reason": "test"}')
    # the stop is checked at the epoch's end only here (tests/test_resume.py covers stops mid-epoch)
    env = dict(os.environ, HPCDL_STOP_CHECK_STEPS="100000")
    first = subprocess.run(["bash", str(run.script)], capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert (run.checkpoints / "last.pt").exists() and not run.result.exists()
    run.stop.unlink()
    second = subprocess.run(["bash", str(run.script)], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    check_run(run, name, RESUMED, samples=512, tests=128)
    for rank in range(1 if name == "dp" else 2):
        events = [json.loads(x) for x in run.rank_events(rank).read_text().splitlines()]
        assert [e["status"] for e in events if e["event"] == "run_stop"] == ["requeue", "success"]
        assert events[4]["resumed_from_epoch"] == 1
    assert json.loads(run.result.read_text())["status"] == "success"
