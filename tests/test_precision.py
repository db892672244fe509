"""Every strategy x {resnet18 (batch norms), mnist-cnn} x {fp32, bf16}: one tiny 2-worker run on CPU each,
through the job script itself (`bash job.sh`, as the resume test does), so that a precision a strategy
cannot take fails here and not on the GPU nodes (issue #10). bf16 on a CPU without bf16 units is slow
(seconds a step for resnet18), so every run is one step a worker: 16 images, batches of 8, 32 px."""

import json
import math
import os
import subprocess

import pytest

from hpc_dl import profiles
from hpc_dl import submit as sub
from hpc_dl.spec import JobSpec
from tests.test_strategies import HOROVOD

STRATEGIES = {
    "ddp": {},
    "fsdp": {},
    "pipeline": {"microbatches": 2},
    "horovod": {"compression": "none"},
    "psgd": {"average": "once"},
    "dp": {},
    "hogwild": {},
    "kfold": {"folds": 2, "fold": 0},
}
# every cell. `make test` runs the two bf16 columns: the fp32 mnist-cnn column is what tests/test_strategies.py
# runs, and the fp32 resnet18 column's code path is the bf16 one's without autocast (its batch norms run in
# fp32 under autocast too). The `full` cells run with `make test-full`, e.g. on a bigger CI machine.
FP32 = {("mnist-cnn", "fp32"), ("resnet18", "fp32")}
MATRIX = [
    pytest.param(s, m, p, id=f"{s}-{m}-{p}", marks=[pytest.mark.full] if (m, p) in FP32 else [])
    for s in STRATEGIES
    for m in ("resnet18", "mnist-cnn")
    for p in ("fp32", "bf16")
]


def tiny_spec(strategy: str, model: str, precision: str) -> JobSpec:
    return JobSpec(
        strategy=strategy,
        model=model,
        dataset="synthetic",
        precision=precision,
        gpus=1 if strategy == "kfold" else 2,
        image_size=32,
        train_samples=16 if strategy != "kfold" else 32,
        test_samples=8,
        batch_size=8,
        epochs=1,
        **STRATEGIES[strategy],
    )


@pytest.mark.slow
@pytest.mark.parametrize(("strategy", "model", "precision"), MATRIX)
def test_every_strategy_trains_in_every_cpu_precision(runs_root, strategy, model, precision):
    if strategy == "horovod" and not HOROVOD:
        if os.environ.get("CI"):
            pytest.fail("horovod is not built (make test builds it)")
        pytest.skip("horovod is not built: make horovod")
    spec = tiny_spec(strategy, model, precision)
    run, _ = sub._prepare(spec, profiles.load("local"), runs_root, "precision", None)
    done = subprocess.run(["bash", str(run.script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    events = [json.loads(x) for x in run.rank_events(0).read_text().splitlines()]
    assert [e["event"] for e in events] == ["run_start", "epoch_stop", "eval", "run_stop"]
    assert events[0]["precision"] == precision and events[-1]["status"] == "success"
    assert math.isfinite(events[1]["loss"]) and math.isfinite(events[2]["test_loss"])
    # every rank of every strategy records its peak memory (CPU workers: the process's peak RSS)
    world = events[0].get("dp_devices") or events[0]["world_size"]
    assert len(run.event_files()) == world
    for path in run.event_files():
        logged = [json.loads(x) for x in path.read_text().splitlines()]
        stops = [e for e in logged if e["event"] in ("epoch_stop", "run_stop")]
        assert [e["peak_memory_source"] for e in stops] == ["peak_rss", "peak_rss"]
        assert all(e["peak_memory(MiB)"] > 100 for e in stops), stops  # torch alone is more
