"""The entrypoints' common command line (what render.entry_args writes) as a TrainConfig."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from .. import catalog


@dataclass(frozen=True)
class TrainConfig:
    run_dir: Path
    model: str
    dataset: str
    data_root: str | None
    train_samples: int | None
    test_samples: int | None
    image_size: int | None
    epochs: int
    batch_size: int
    lr: float
    seed: int
    precision: str
    scheduler: str | None = None
    workers: int | None = None  # strategies that start their own workers (dp devices, hogwild processes)
    compression: str | None = None
    backward_passes: int | None = None
    average: str | None = None
    stages: int | None = None
    microbatches: int | None = None
    folds: int | None = None
    fold: int | None = None


def parser(strategy: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m hpc_dl.jobs.{strategy}", description=f"hpcdl {strategy} worker")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--model", choices=sorted(catalog.MODELS), default="mnist-cnn")
    p.add_argument("--dataset", choices=sorted(catalog.DATASETS), default="fashion-mnist")
    p.add_argument("--data-root", default=None)
    p.add_argument("--train-samples", type=int, default=None)
    p.add_argument("--test-samples", type=int, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=catalog.PRECISIONS, default="fp32")
    p.add_argument("--scheduler", choices=catalog.SCHEDULERS, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--compression", choices=catalog.COMPRESSIONS, default=None)
    p.add_argument("--backward-passes", type=int, default=None)
    p.add_argument("--average", default=None)
    p.add_argument("--stages", type=int, default=None)
    p.add_argument("--microbatches", type=int, default=None)
    p.add_argument("--folds", type=int, default=None)
    p.add_argument("--fold", type=int, default=None)
    return p


def config_from(ns: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f: getattr(ns, f) for f in TrainConfig.__dataclass_fields__})
