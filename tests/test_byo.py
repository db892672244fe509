"""Bring your own model, data set or script: login-node checks (exact one-line errors, nothing left
behind), rendering, and real local runs (marked slow) that reach collect."""

import json
import shlex
import textwrap
from pathlib import Path

import pytest

from hpc_dl.byo import check_ref
from hpc_dl.errors import SpecError
from hpc_dl.profiles import load as load_profile
from hpc_dl.render import RenderContext, render
from hpc_dl.spec import JobSpec
from tests.conftest import run_folders

NETS = """
import torch
from torch import nn


def build(num_classes, channels=1, image_size=28):
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * image_size * image_size, num_classes))


class Net(nn.Module):
    def __init__(self, num_classes, channels):
        super().__init__()
        self.fc = nn.Linear(channels, num_classes)


def wrong(layers, num_classes=10):
    return None
"""

DDP_SCRIPT = """
import os, sys, time
import torch.distributed as dist
from hpc_dl import report

dist.init_process_group("gloo")
report.start(model="sleeper", dataset="none", batch_size=10)
for _ in range(int(sys.argv[1])):
    t0 = time.perf_counter()
    time.sleep(0.2)
    report.epoch(samples=100, seconds=time.perf_counter() - t0, loss=1.0, accuracy=0.5)
"""

MPI_SCRIPT = """
import sys, time
from mpi4py import MPI
from hpc_dl import report

report.start(model="sleeper", dataset="none", batch_size=10)
for _ in range(int(sys.argv[1])):
    t0 = time.perf_counter()
    time.sleep(0.2)
    report.epoch(samples=100, seconds=time.perf_counter() - t0)
"""


@pytest.fixture
def user_code(tmp_path, monkeypatch):
    """A package in a folder of its own, and a local profile whose pythonpath names that folder."""
    code = tmp_path / "code"
    (code / "mypkg").mkdir(parents=True)
    (code / "mypkg" / "__init__.py").write_text("raise RuntimeError('the login node must not import this')\n")
    (code / "mypkg" / "nets.py").write_text(NETS)
    profiles = tmp_path / "user-profiles"
    profiles.mkdir(exist_ok=True)
    local = Path(load_profile("local").source).read_text()
    monkeypatch.delenv("PYTHONPATH", raising=False)
    (profiles / "mine.yaml").write_text(local.replace("name: local", "name: mine") + f"pythonpath: [{code}]\n")
    return code


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--model", "nopkg.nets:build"],
            "Error: invalid model 'nopkg.nets:build': module 'nopkg.nets' not found (on PYTHONPATH: {code}; add "
            "its folder to PYTHONPATH or to the profile's pythonpath)",
        ),
        (
            ["--model", "mypkg.nets:wrong"],
            "Error: invalid model 'mypkg.nets:wrong': wrong() has a required parameter 'layers' that hpcdl does "
            "not pass (a model function takes num_classes, and optionally channels and image_size)",
        ),
        (
            ["--dataset", "mypkg.nets:nothing"],
            "Error: invalid dataset 'mypkg.nets:nothing': module 'mypkg.nets' ({code}/mypkg/nets.py) defines no "
            "'nothing'",
        ),
        (
            ["--script", "nothere.py"],
            "Error: invalid script: {tmp}/nothere.py does not exist (give a path to your training script)",
        ),
        (
            ["--script", "nothere.py", "--train-samples", "10"],
            "Error: --train-samples does not apply with --script (your script sets it: pass it after --)",
        ),
        (["--", "--lr", "1"], "Error: script arguments (after --) need --script"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "submit"])
def test_bad_user_code_is_one_line_exit_2_nothing_left(hpcdl, runs_root, tmp_path, user_code, args, message, dry_run):
    result = hpcdl("submit", "--profile", "mine", *(["--dry-run"] if dry_run else []), *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == message.format(code=user_code, tmp=tmp_path)
    assert run_folders(runs_root) == []


def test_signature_checks_read_the_source(user_code):
    path = (str(user_code),)
    check_ref("model", "mypkg.nets:build", path)
    check_ref("model", "mypkg.nets:Net", path)  # a class, through its __init__
    with pytest.raises(SpecError, match="does not take 'num_classes'"):
        (user_code / "mypkg" / "other.py").write_text("def f(channels=1):\n    pass\n")
        check_ref("model", "mypkg.other:f", path)


def test_script_is_launched_instead_of_the_entrypoint(tmp_path, user_code):
    script = str(tmp_path / "my train.py")
    ctx = RenderContext(tmp_path / "run", "r1", python="/venv/bin/python")
    for strategy, launch in [
        ("ddp", "--nproc-per-node=2 \\\n  "),
        ("psgd", "-x HPCDL_LAUNCHER \\\n  /venv/bin/python "),
        ("hogwild", "\n/venv/bin/python "),
    ]:
        spec = JobSpec(strategy=strategy, gpus=2, script=script, script_args=("--lr", "0.1; rm -rf ~"))
        text = render(spec, load_profile("mine"), ctx).script
        assert f"{launch}{shlex.quote(script)} --lr '0.1; rm -rf ~'\n" in text, text
        assert f"export PYTHONPATH={user_code}${{PYTHONPATH:+:$PYTHONPATH}}" in text
        assert "hpc_dl.jobs" not in text


def _collected(runs_root: Path):
    from hpc_dl.analysis import load as ld

    return ld.load([runs_root])


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "psgd"])
def test_user_model_trains(hpcdl, runs_root, user_code, strategy):
    small = ["--dataset", "digits", "--train-samples", "256", "--test-samples", "64", "--epochs", "2"]
    (user_code / "mypkg" / "__init__.py").write_text("")  # on the node the package is imported
    result = hpcdl(
        "submit",
        "--profile",
        "mine",
        "--strategy",
        strategy,
        "--gpus",
        "2",
        "--model",
        "mypkg.nets:build",
        *small,
        "--wait",
    )
    assert result.exit_code == 0, result.output
    loaded = _collected(runs_root)
    (row,) = loaded.runs.to_dict("records")
    assert (row["state"], row["model"], row["workers"], row["epochs_done"]) == ("COMPLETED", "mypkg.nets:build", 2, 2)
    assert loaded.epochs["samples"].tolist() == [256, 256]


@pytest.mark.slow
@pytest.mark.parametrize("strategy, script", [("ddp", DDP_SCRIPT), ("psgd", MPI_SCRIPT)])
def test_user_script_reaches_collect(hpcdl, runs_root, tmp_path, strategy, script):
    (tmp_path / "train.py").write_text(textwrap.dedent(script))
    result = hpcdl(
        "submit",
        "--profile",
        "local",
        "--strategy",
        strategy,
        "--gpus",
        "2",
        "--script",
        "train.py",
        "--wait",
        "--",
        "2",
    )
    assert result.exit_code == 0, result.output
    loaded = _collected(runs_root)
    (row,) = loaded.runs.to_dict("records")
    assert (row["state"], row["model"], row["dataset"], row["workers"]) == ("COMPLETED", "sleeper", "none", 2)
    assert loaded.epochs["samples"].tolist() == [200, 200]  # both ranks' samples, combined by the script's group
    assert all(400 < t < 1000 for t in loaded.epochs["throughput"])  # 200 samples in ~0.2 s
    (folder,) = run_folders(runs_root)
    assert json.loads((folder / "result.json").read_text())["epochs"] == 2


@pytest.mark.slow
def test_silent_script_gets_its_wall_time(hpcdl, runs_root, tmp_path):
    (tmp_path / "quiet.py").write_text("import time\ntime.sleep(0.5)\n")
    result = hpcdl("submit", "--profile", "local", "--strategy", "dp", "--script", "quiet.py", "--wait")
    assert result.exit_code == 0, result.output
    loaded = _collected(runs_root)
    (row,) = loaded.runs.to_dict("records")
    assert (row["state"], row["model"], row["epochs_done"]) == ("COMPLETED", "quiet.py", 1)
    assert loaded.epochs["time_s"].iloc[0] >= 0.5
