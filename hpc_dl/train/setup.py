"""What every entrypoint starts with: the run's task, the seed, the data, the model on its device, the
loaders, SGD. The task (hpc_dl.train.tasks) builds the model and the data; this module asks it, never
which task it is."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import tasks
from .config import TrainConfig
from .data import Data
from .env import DistEnv
from .tasks.base import Task


@dataclass
class Setup:
    data: Data
    model: nn.Module
    train: torch.utils.data.DataLoader
    sampler: object
    test: torch.utils.data.DataLoader
    task: Task  # what trains it: Job.train asks it for the trainer class


def task_of(cfg: TrainConfig) -> Task:
    return tasks.of(cfg.model, cfg.dataset)


def setup(
    cfg: TrainConfig,
    env: DistEnv,
    model: nn.Module | None = None,
    ds: Data | None = None,
    batch_size: int | None = None,
    shard: tuple[int, int] | None = None,
) -> Setup:
    """Same seed on every rank (so every replica starts equal), the data (or `ds`), the model on its device
    (or `model`), and this rank's loaders; `batch_size` and `shard` (rank, world size) for a strategy that
    batches for several devices in one process (dp)."""
    task = task_of(cfg)
    torch.manual_seed(cfg.seed)
    if ds is None:
        ds = task.load_data(cfg)
    if model is None:
        model = task.build_model(cfg, ds).to(env.device)
    rank, world = shard or (env.rank, env.world_size)
    size = batch_size or cfg.batch_size
    train, sampler, test = task.loaders(ds, size, rank, world, cfg.seed, env.device, cfg.loader_workers)
    return Setup(ds, model, train, sampler, test, task)


def load_data(cfg: TrainConfig) -> Data:
    """The configured data set, whole: each strategy shards or splits it its own way."""
    return task_of(cfg).load_data(cfg)


def sgd(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer every strategy uses, so they differ only in their distributed part."""
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9)


def make_scheduler(optimizer, name: str | None, epochs: int):
    """A per-epoch learning-rate schedule, or None."""
    if name in (None, "none"):
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
