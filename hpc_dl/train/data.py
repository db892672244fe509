"""What every task's data comes as: `Data` (the train and test sets, the shape the model is built for,
the collate function), the in-memory image sets that loaders.py batches on the training device
(TensorImages, shaped per batch by a Batcher), the data cache, and DataError.

The tasks' own data sets are in their folders under train/tasks/ (e.g. classification/data.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset


class DataError(RuntimeError):
    """A dataset could not be loaded; the message says what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("HPCDL_DATA_CACHE", Path.home() / ".cache" / "hpcdl" / "datasets"))


@dataclass
class Data:
    train: Dataset
    test: Dataset
    num_classes: int  # classes; a language set's: its vocabulary
    channels: int | None = None  # what an image model is built for (None: not images)
    image_size: int | None = None
    collate: object = None  # a Batcher for the in-memory sets, a task's own (a list batch), or None: the default


class TensorImages(Dataset):
    """uint8 images (N, C, H, W) at their native size, in memory, and their labels; an item is (image, label)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


GRAY = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # torchvision's Grayscale weights


@dataclass(frozen=True)
class Batcher:
    """Collate (uint8 image, label) items into one float batch: resized, channel-converted, normalised."""

    size: int
    channels: int
    mean: float
    std: float

    def __call__(self, items):
        return self.shape(torch.stack([im for im, _ in items])), torch.tensor([label for _, label in items])

    def shape(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) -> the model's float input, on the images' device."""
        x = images.float().div_(255.0)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and self.channels == 1:
            x = (x * GRAY.to(x.device)).sum(1, keepdim=True)
        return x.sub(self.mean).div_(self.std).contiguous()


def first(ds: Dataset, count: int | None) -> Dataset:
    """The first `count` items (all when None)."""
    return ds if count is None else Subset(ds, range(min(count, len(ds))))
