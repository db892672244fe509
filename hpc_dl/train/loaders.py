"""A rank's train and test loaders, fit for the device it trains on.

- The in-memory sets (data.Batcher collates them: fashion-mnist, mnist, cifar10, digits, synthetic) go
  through a TensorLoader: their uint8 images are copied to the device once, a batch is gathered there by
  the sampler's indices and resized, channel-converted and normalised there. No worker processes, no
  per-item collate, no host-to-device copy per step. A set too big for the device budget
  (HPCDL_DEVICE_DATA_MB, default 2048) stays in host memory and is gathered there.
- Everything else (image folders, COCO folders, your own data sets) goes through a torch DataLoader with
  `--loader-workers` worker processes (default: see `auto_workers`), pinned memory on a GPU, persistent
  workers and prefetch.

`describe` is what run_start records about the choice.
"""

from __future__ import annotations

import math
import os

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from .data import Batcher, Data, TensorImages

MAX_AUTO_WORKERS = 8


def device_budget_bytes() -> int:
    return int(float(os.environ.get("HPCDL_DEVICE_DATA_MB", "2048")) * 2**20)


def auto_workers(device: torch.device) -> int:
    """DataLoader workers when --loader-workers is not given: on a GPU the worker's CPUs (OMP_NUM_THREADS,
    which hpcdl sets from --cpus-per-task) minus the training process's own, at most 8; on CPU none (the
    workers would take the cores the training threads compute on)."""
    if device.type != "cuda":
        return 0
    cpus = int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
    return max(1, min(MAX_AUTO_WORKERS, cpus - 1))


def _tensors(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(uint8 images, labels) of an in-memory set, or of a subset of one, in its own order; else None."""
    if isinstance(ds, TensorImages):
        return ds.images, ds.labels
    if isinstance(ds, Subset):
        inner = _tensors(ds.dataset)
        if inner is not None:
            idx = torch.as_tensor(list(ds.indices), dtype=torch.long)
            return inner[0][idx], inner[1][idx]
    return None


class TensorLoader:
    """Batches of an in-memory set gathered by index on the device and shaped there by its Batcher. The same
    batches, in the same order, as a DataLoader over the set with the same sampler and the Batcher as collate."""

    def __init__(self, ds, tensors, batcher: Batcher, batch_size: int, device, sampler=None, drop_last=False):
        images, labels = tensors
        home = device if images.nbytes + labels.nbytes <= device_budget_bytes() else torch.device("cpu")
        self.dataset, self.sampler, self.batcher = ds, sampler, batcher
        self.batch_size, self.drop_last = batch_size, drop_last
        self.images, self.labels = images.to(home), labels.to(home)
        self.on_device = home.type == device.type

    def _count(self) -> int:
        return len(self.sampler) if self.sampler is not None else len(self.labels)

    def __len__(self) -> int:
        n, b = self._count(), self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def __iter__(self):
        n = self._count()
        order = torch.tensor(list(self.sampler)) if self.sampler is not None else torch.arange(n)
        order = order.to(self.images.device)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                return
            yield self.batcher.shape(self.images[idx]), self.labels[idx]


def loader(ds, collate, batch_size, device, workers, sampler=None, drop_last=False):
    tensors = _tensors(ds) if isinstance(collate, Batcher) else None
    if tensors is not None:
        return TensorLoader(ds, tensors, collate, batch_size, device, sampler, drop_last)
    workers = auto_workers(device) if workers is None else workers
    extra = {"persistent_workers": True, "prefetch_factor": 4} if workers > 0 else {}
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=drop_last,
        collate_fn=collate,
        **extra,
    )


def train_loader(data: Data, batch_size: int, rank: int, world_size: int, seed: int, device, **opts):
    """This rank's shuffled shard of the training set (DistributedSampler); opts: workers, drop_last."""
    sampler = DistributedSampler(data.train, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    drop_last = opts.get("drop_last", False)
    return loader(data.train, data.collate, batch_size, device, opts.get("workers"), sampler, drop_last), sampler


def test_loader(data: Data, batch_size: int, rank: int, world_size: int, device, **opts):
    """Each rank evaluates every world_size-th test image: no padding, so counts and accuracy are exact."""
    shard = Subset(data.test, range(rank, len(data.test), world_size))
    return loader(shard, data.collate, batch_size, device, opts.get("workers"), drop_last=opts.get("drop_last", False))


def describe(loader) -> dict:
    """run_start's record of the input pipeline."""
    if isinstance(loader, TensorLoader):
        where = "device" if loader.on_device else "host"
        return {"loader": f"tensors on the {where}", "loader_workers": 0}
    workers = getattr(loader, "num_workers", 0)
    return {"loader": "DataLoader", "loader_workers": workers, "pin_memory": getattr(loader, "pin_memory", False)}
