"""The classification data sets by name (see catalog.DATASETS), shaped for a model (loaders.py batches them).

Nothing is ever downloaded: Fashion-MNIST comes from the Debian package dataset-fashion-mnist (or
--data-root), digits from scikit-learn, synthetic is generated; mnist, cifar10 and imagefolder must already
be under --data-root.

The small sets (fashion-mnist, mnist, cifar10, digits, synthetic) are decoded once into uint8 tensors in
memory, at their native size; a batch is resized, channel-converted and normalised as one tensor
(Batcher), not item by item through PIL; loaders.py does that on the training device. imagefolder stays
per item, decoded by DataLoader workers. Your own data set (package.module:function) is byo.py's.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from .... import catalog
from ...data import Batcher, Data, DataError, TensorImages, cache_dir, first

FASHION_MNIST_DEB = Path(os.environ.get("HPCDL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


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
class Request:
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
    """The catalog data set shaped for the catalog model (size, channels), cut to the requested sample counts."""
    if dataset not in _READERS:  # pragma: no cover - catalog and _READERS list the same names
        raise DataError(f"unknown dataset {dataset!r}")
    size, ch = image_size_for(model, dataset, image_size), catalog.MODELS[model].channels
    train, test, classes = read(Request(dataset, data_root, size, ch, train_samples, test_samples, seed))
    assert catalog.DATASETS[dataset].classes in (None, classes)
    collate = batcher(dataset, size, ch)
    return Data(train=train, test=test, num_classes=classes, channels=ch, image_size=size, collate=collate)


def read(req: Request) -> tuple[Dataset, Dataset, int]:
    """A catalog data set's train and test sets, cut to the requested counts, and its class count."""
    train, test, classes = _READERS[req.dataset](req)
    if req.dataset != "synthetic":  # synthetic is generated at the requested counts
        train, test = first(train, req.train_samples), first(test, req.test_samples)
    return train, test, classes


def batcher(dataset: str, size: int, channels: int) -> Batcher | None:
    """The collate function of an in-memory set (the serving page shapes an upload with it too); else None."""
    return Batcher(size, channels, *_NORMALISE[dataset]) if dataset in _NORMALISE else None


# the in-memory sets, normalised per batch by a Batcher with this (mean, std) on [0, 1] pixels
_NORMALISE = {"fashion-mnist": (0.5, 0.5), "mnist": (0.5, 0.5), "cifar10": (0.5, 0.25), "digits": (0.5, 0.5)}
_NORMALISE["synthetic"] = (0.0, 1.0)  # FakeData's ToTensor pixels, as before: [0, 1], not normalised


def _mnist(req: Request):
    from torchvision import datasets as tvd

    root = req.data_root or prepare_fashion_mnist()
    cls = tvd.FashionMNIST if req.dataset == "fashion-mnist" else tvd.MNIST
    try:
        sets = [cls(root, train=train) for train in (True, False)]
    except RuntimeError as exc:
        raise DataError(f"{req.dataset} not found under {root}: {exc} (hpcdl never downloads)") from None
    train, test = (TensorImages(d.data.unsqueeze(1), d.targets) for d in sets)
    return train, test, 10


def _cifar10(req: Request):
    from torchvision import datasets as tvd

    try:
        sets = [tvd.CIFAR10(req.data_root, train=train) for train in (True, False)]
    except RuntimeError as exc:
        raise DataError(f"cifar10 not found under {req.data_root}: {exc} (hpcdl never downloads)") from None
    train, test = (
        TensorImages(torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(d.targets)) for d in sets
    )
    return train, test, 10


def _digits(req: Request):
    """scikit-learn's 8x8 digits, a fixed 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)).round().to(torch.uint8)
    labels = torch.tensor(d.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(labels))
    train = TensorImages(images[order[:cut]], labels[order[:cut]])
    test = TensorImages(images[order[cut:]], labels[order[cut:]])
    return train, test, 10


def _synthetic(req: Request):
    """Random uint8 images and labels, generated as tensors from the seed (train and test apart)."""
    n_train, n_test = req.train_samples or 1024, req.test_samples or 256
    shape = (req.channels, req.size, req.size)

    def make(n: int, offset: int) -> TensorImages:
        g = torch.Generator().manual_seed(req.seed * 1_000_003 + offset)
        images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)
        return TensorImages(images, torch.randint(0, 10, (n,), generator=g))

    return make(n_train, 0), make(n_test, 1), 10


def _imagefolder(req: Request):
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
