"""A run's checkpoint, ready to answer: `check(run)` (no torch: can it be served?), `load(run) -> Served`,
and `curves(run)` for the page's training curves.

The checkpoint is the run's last one (RunDir.last_checkpoint, written by Trainer.save_checkpoint), read
as a plain state_dict (state["model"]). ddp, dp, fsdp (gathered in full), horovod, hogwild and kfold save
one whole model; pipeline saves one stage per rank and psgd each rank's own model, so those are refused
with the reason. What the model becomes is the run's task's (hpc_dl.train.tasks: Task.predictor), and so
is what the page shows of it (Served.view): this module never asks which task it is.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from .. import catalog
from ..errors import NotServable, UsageError
from ..events import read_rank
from ..runs import RunDir, read_json, resolve

# strategies whose checkpoint is not one whole model (see gather_state in jobs/pipeline.py and jobs/psgd.py)
UNSERVABLE = {
    "pipeline": "its checkpoint holds one pipeline stage per rank, not a whole model",
    "psgd": "its checkpoint holds every rank's own model, not one averaged model",
}


def check(run: RunDir) -> dict:
    """The run's spec if its checkpoint can answer predictions; else NotServable with the reason. No torch."""
    spec = read_json(run.spec)
    if not isinstance(spec, dict):
        raise NotServable(f"run {run.run_id} has no readable {run.spec.name}")
    strategy = spec.get("strategy")
    if strategy in UNSERVABLE:
        raise NotServable(f"run {run.run_id} cannot be served: {strategy}: {UNSERVABLE[strategy]}")
    if not run.last_checkpoint.is_file():
        raise NotServable(
            f"run {run.run_id} has no checkpoint ({run.last_checkpoint}): serve needs a run that finished an epoch"
        )
    if not zipfile.is_zipfile(run.last_checkpoint):  # torch.save writes a zip: a truncated file is not one
        raise NotServable(f"cannot read checkpoint {run.last_checkpoint}: not a complete torch.save file")
    return spec


def _weights(run: RunDir) -> tuple[dict, int]:
    """The checkpoint's model state_dict and its epoch; NotServable when it holds none."""
    import torch

    path = run.last_checkpoint
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated, foreign or corrupt file: torch raises many kinds
        text = " ".join(str(exc).split())[:200]
        raise NotServable(f"cannot read checkpoint {path}: {type(exc).__name__}: {text}") from None
    state = ckpt.get("state") if isinstance(ckpt, dict) else None
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise NotServable(f"run {run.run_id} cannot be served: checkpoint {path} holds no whole model")
    return weights, int(ckpt.get("epoch") or 0)


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"invalid device: {name} (no CUDA device here; use cpu or auto)")
    return torch.device(name)


def load(run: RunDir | str | Path, device: str = "auto"):
    """The run (a RunDir, folder, id or unique prefix) on `device` (auto: a GPU if there is one), as its
    task serves it (a classifier's Predictor, a detector's Detector, ...)."""
    from ..train import tasks

    run = run if isinstance(run, RunDir) else resolve(str(run))
    spec = check(run)
    weights, epoch = _weights(run)
    task = tasks.of(spec.get("model"), spec.get("dataset"))
    return task.predictor(run, spec, weights, epoch, _device(device))


# what curves reads from each event: the loop's loss and accuracy, and every task's own numbers
CURVES = {
    "epoch_stop": ("loss", "accuracy", *(m.key for m in catalog.epoch_metrics())),
    "eval": ("test_loss", *(m.key for m in catalog.metrics())),
}


def curves(run: RunDir) -> list[dict]:
    """Per epoch: loss, accuracy, test_loss and the run's task's metrics (test_accuracy; a detector's
    test_map, ...), from rank 0's events; a key the run's events lack is left out."""
    events, _ = read_rank(run.rank_events(0))
    rows: dict[int, dict] = {}
    for e in events:
        if e["event"] not in ("epoch_stop", "eval") or not isinstance(e.get("epoch"), int):
            continue
        row = rows.setdefault(e["epoch"], {"epoch": e["epoch"]})
        row.update({k: e[k] for k in CURVES[e["event"]] if k in e})
    return [rows[k] for k in sorted(rows)]
