"""What every entrypoint starts with: the seed, the data, the model on its device, the loaders, SGD."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import data, detection, loaders, models
from .config import TrainConfig
from .env import DistEnv


@dataclass
class Setup:
    data: data.Data
    model: nn.Module
    train: torch.utils.data.DataLoader
    sampler: object
    test: torch.utils.data.DataLoader
    task: str = "classification"  # catalog's task of the model: "detection" trains with DetectionTrainer


def setup(cfg: TrainConfig, env: DistEnv, model: nn.Module | None = None, ds: data.Data | None = None) -> Setup:
    """Same seed on every rank (so every replica starts equal), this rank's shard of the data, the model."""
    if model is None and ds is None and detection.is_detection(cfg.model):
        return detection.setup(cfg, env)
    torch.manual_seed(cfg.seed)
    if ds is None:
        ds = load_data(cfg)
    if model is None:
        model = models.build(cfg.model, ds.num_classes, ds.channels, ds.image_size).to(env.device)
    dev, workers = env.device, cfg.loader_workers
    train, sampler = loaders.train_loader(ds, cfg.batch_size, env.rank, env.world_size, cfg.seed, dev, workers=workers)
    test = loaders.test_loader(ds, cfg.batch_size, env.rank, env.world_size, dev, workers=workers)
    return Setup(ds, model, train, sampler, test)


def load_data(cfg: TrainConfig) -> data.Data:
    """The configured data set, whole: each strategy shards or splits it its own way."""
    return data.load(
        cfg.model, cfg.dataset, cfg.data_root, cfg.image_size, cfg.train_samples, cfg.test_samples, cfg.seed
    )


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
