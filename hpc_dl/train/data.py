"""Datasets by name (see catalog.DATASETS), shaped for a model, and their distributed loaders.

Nothing is ever downloaded: Fashion-MNIST comes from the Debian package dataset-fashion-mnist (or
--data-root), digits from scikit-learn, synthetic from torchvision's FakeData; mnist, cifar10 and
imagefolder must already be under --data-root.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from .. import byo, catalog

FASHION_MNIST_DEB = Path(os.environ.get("HPCDL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DataError(RuntimeError):
    """A dataset could not be loaded; the message says what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("HPCDL_DATA_CACHE", Path.home() / ".cache" / "hpcdl" / "datasets"))


@dataclass
class Data:
    train: Dataset
    test: Dataset
    num_classes: int
    channels: int
    image_size: int


def image_size_for(model: str, dataset: str, requested: int | None) -> int:
    if requested:
        return requested
    return max(catalog.DATASETS[dataset].size, catalog.MODELS[model].min_size)


def _transform(in_channels: int, out_channels: int, size: int, native: int, mean: float, std: float):
    from torchvision import transforms as T

    steps = []
    if size != native:
        steps.append(T.Resize((size, size), antialias=True))
    if in_channels == 1 and out_channels == 3:
        steps.append(T.Grayscale(num_output_channels=3))
    elif in_channels == 3 and out_channels == 1:
        steps.append(T.Grayscale(num_output_channels=1))
    steps += [T.ToTensor(), T.Normalize([mean] * out_channels, [std] * out_channels)]
    return T.Compose(steps)


class _TensorImages(Dataset):
    """(N, C, H, W) float tensors + labels, with a tensor transform applied per item."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), int(self.labels[i])


def prepare_fashion_mnist() -> Path:
    """Gunzip the Debian package's files into <cache>/FashionMNIST/raw (atomic; safe for many ranks)."""
    raw = cache_dir() / "FashionMNIST" / "raw"
    missing = [n for n in FASHION_FILES if not (raw / n).exists()]
    if not missing:
        return cache_dir()
    if not all((FASHION_MNIST_DEB / f"{n}.gz").exists() for n in FASHION_FILES):
        raise DataError(
            f"Fashion-MNIST not found in {FASHION_MNIST_DEB}: install the Debian package dataset-fashion-mnist "
            "(make does) or pass --data-root"
        )
    raw.mkdir(parents=True, exist_ok=True)
    for name in missing:
        fd, tmp = tempfile.mkstemp(dir=raw, prefix=f".{name}.")
        with gzip.open(FASHION_MNIST_DEB / f"{name}.gz", "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, raw / name)
    return cache_dir()


@dataclass(frozen=True)
class _Request:
    """What a dataset reader needs: where, at what size and channel count, how many samples."""

    dataset: str
    data_root: str | None
    size: int
    channels: int
    train_samples: int | None
    test_samples: int | None
    seed: int


def load(
    model: str,
    dataset: str,
    data_root: str | None,
    image_size: int | None,
    train_samples: int | None,
    test_samples: int | None,
    seed: int,
) -> Data:
    """The data set shaped for the model (size, channels), cut to the requested sample counts."""
    if byo.is_ref(model) or byo.is_ref(dataset):  # yours (hpc_dl/byo.py): imported on this node
        from .byo import load as load_own

        return load_own(model, dataset, data_root, image_size, train_samples, test_samples, seed)
    if dataset not in _READERS:  # pragma: no cover - catalog and _READERS list the same names
        raise DataError(f"unknown dataset {dataset!r}")
    size, ch = image_size_for(model, dataset, image_size), catalog.MODELS[model].channels
    train, test, classes = _READERS[dataset](_Request(dataset, data_root, size, ch, train_samples, test_samples, seed))
    if dataset != "synthetic":  # synthetic is generated at the requested counts
        train, test = _first(train, train_samples), _first(test, test_samples)
    assert catalog.DATASETS[dataset].classes in (None, classes)
    return Data(train=train, test=test, num_classes=classes, channels=ch, image_size=size)


def _first(ds: Dataset, count: int | None) -> Dataset:
    return ds if count is None else Subset(ds, range(min(count, len(ds))))


def _mnist(req: _Request):
    from torchvision import datasets as tvd

    root = req.data_root or prepare_fashion_mnist()
    cls = tvd.FashionMNIST if req.dataset == "fashion-mnist" else tvd.MNIST
    tf = _transform(1, req.channels, req.size, 28, 0.5, 0.5)
    try:
        return cls(root, train=True, transform=tf), cls(root, train=False, transform=tf), 10
    except RuntimeError as exc:
        raise DataError(f"{req.dataset} not found under {root}: {exc} (hpcdl never downloads)") from None


def _cifar10(req: _Request):
    from torchvision import datasets as tvd

    tf = _transform(3, req.channels, req.size, 32, 0.5, 0.25)
    try:
        train = tvd.CIFAR10(req.data_root, train=True, transform=tf)
        test = tvd.CIFAR10(req.data_root, train=False, transform=tf)
    except RuntimeError as exc:
        raise DataError(f"cifar10 not found under {req.data_root}: {exc} (hpcdl never downloads)") from None
    return train, test, 10


def _digits(req: _Request):
    """scikit-learn's 8x8 digits, a fixed 80/20 split."""
    from sklearn.datasets import load_digits
    from torchvision.transforms import v2 as T2

    d = load_digits()
    images = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(d.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(labels))
    ch = req.channels
    steps = [T2.Resize((req.size, req.size), antialias=True)] if req.size != 8 else []
    if ch == 3:
        steps.append(T2.Grayscale(num_output_channels=3))
    steps.append(T2.Normalize([0.5] * ch, [0.5] * ch))
    tf = T2.Compose(steps)
    train = _TensorImages(images[order[:cut]], labels[order[:cut]], tf)
    test = _TensorImages(images[order[cut:]], labels[order[cut:]], tf)
    return train, test, 10


def _synthetic(req: _Request):
    from torchvision import datasets as tvd
    from torchvision import transforms as T

    n_train, n_test = req.train_samples or 1024, req.test_samples or 256
    shape, tf = (req.channels, req.size, req.size), T.ToTensor()
    train = tvd.FakeData(n_train, shape, 10, transform=tf, random_offset=req.seed)
    test = tvd.FakeData(n_test, shape, 10, transform=tf, random_offset=req.seed + n_train)
    return train, test, 10


def _imagefolder(req: _Request):
    """root/train and root/test, or one folder split 90/10 (fixed)."""
    from torchvision import datasets as tvd

    root = Path(req.data_root)
    if not root.is_dir():
        raise DataError(f"imagefolder root {root} is not a folder")
    tf = _transform(3, req.channels, req.size, -1, 0.5, 0.25)
    try:
        if (root / "train").is_dir():
            train = tvd.ImageFolder(root / "train", transform=tf)
            test = tvd.ImageFolder(root / "test", transform=tf) if (root / "test").is_dir() else None
        else:
            train, test = tvd.ImageFolder(root, transform=tf), None
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"imagefolder: {exc}") from None
    classes = len(train.classes)
    if test is None:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
        cut = max(1, int(0.9 * len(order)))
        train, test = Subset(train, order[:cut]), Subset(train, order[cut:])
    return train, test, classes


_READERS = {
    "fashion-mnist": _mnist,
    "mnist": _mnist,
    "cifar10": _cifar10,
    "digits": _digits,
    "synthetic": _synthetic,
    "imagefolder": _imagefolder,
}


def train_loader(
    data: Data, batch_size: int, rank: int, world_size: int, seed: int, pin: bool, drop_last: bool = False
):
    sampler = DistributedSampler(data.train, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    loader = DataLoader(
        data.train, batch_size=batch_size, sampler=sampler, num_workers=0, pin_memory=pin, drop_last=drop_last
    )
    return loader, sampler


def test_loader(data: Data, batch_size: int, rank: int, world_size: int, pin: bool):
    """Each rank evaluates every world_size-th test image: no padding, so counts and accuracy are exact."""
    shard = Subset(data.test, range(rank, len(data.test), world_size))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=0, pin_memory=pin)
