"""A run's checkpoint as a classifier: `load(run) -> Predictor`, `Predictor.top5(images)` (a detection run's
as a box detector: serve/detect.py).

The model is built by hpc_dl.train.models from the run's spec and gets the checkpoint's plain state_dict
(checkpoints/last.pt, written by Trainer.save_checkpoint: state["model"]). ddp, dp, fsdp (gathered in
full), horovod, hogwild and kfold save one whole model; pipeline saves one stage per rank and psgd each
rank's own model, so those are refused with the reason. An uploaded image is preprocessed as
hpc_dl.train.data prepares the run's data set: the data set's own colour mode, resized to the run's
image side, turned grey or RGB for the model, normalised with the data set's mean and std.
tests/test_serve.py checks that it gives the training pipeline's tensors bit for bit.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import NotServable, UsageError
from ..events import read_rank
from ..runs import RunDir, read_json, resolve

# strategies whose checkpoint is not one whole model (see gather_state in jobs/pipeline.py and jobs/psgd.py)
UNSERVABLE = {
    "pipeline": "its checkpoint holds one pipeline stage per rank, not a whole model",
    "psgd": "its checkpoint holds every rank's own model, not one averaged model",
}
CLASS_NAMES = {
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "mnist": tuple("0123456789"),
    "digits": tuple("0123456789"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
# how hpc_dl.train.data stores and normalises each data set: (channels of its images, mean, std);
# channels None: the model's (synthetic images are made for it); mean None: not normalised
SOURCES = {
    "fashion-mnist": (1, 0.5, 0.5),
    "mnist": (1, 0.5, 0.5),
    "digits": (1, 0.5, 0.5),
    "cifar10": (3, 0.5, 0.25),
    "imagefolder": (3, 0.5, 0.25),
    "synthetic": (None, None, None),
}
IMAGE_TYPES = ("png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff")


def checkpoint_path(run: RunDir) -> Path:
    return run.checkpoints / "last.pt"


def check(run: RunDir) -> dict:
    """The run's spec if its checkpoint can answer predictions; else NotServable with the reason. No torch."""
    spec = read_json(run.spec)
    if not isinstance(spec, dict):
        raise NotServable(f"run {run.run_id} has no readable {run.spec.name}")
    strategy = spec.get("strategy")
    if strategy in UNSERVABLE:
        raise NotServable(f"run {run.run_id} cannot be served: {strategy}: {UNSERVABLE[strategy]}")
    if not checkpoint_path(run).is_file():
        raise NotServable(
            f"run {run.run_id} has no checkpoint ({checkpoint_path(run)}): serve needs a run that finished an epoch"
        )
    if not zipfile.is_zipfile(checkpoint_path(run)):  # torch.save writes a zip: a truncated file is not one
        raise NotServable(f"cannot read checkpoint {checkpoint_path(run)}: not a complete torch.save file")
    return spec


def class_names(spec: dict, count: int) -> list[str]:
    """The data set's class names (imagefolder: its folder names, as ImageFolder sorts them), else 'class K'."""
    names = CLASS_NAMES.get(spec.get("dataset"))
    if names is None and spec.get("dataset") == "imagefolder" and spec.get("data_root"):
        root = Path(spec["data_root"])
        root = root / "train" if (root / "train").is_dir() else root
        names = sorted(e.name for e in os.scandir(root) if e.is_dir()) if root.is_dir() else None
    if names is None or len(names) != count:
        return [f"class {i}" for i in range(count)]
    return list(names)


def preprocess(dataset: str, size: int, channels: int) -> Callable:
    """PIL image -> the (channels, size, size) tensor hpc_dl.train.data would give for it."""
    from torchvision import transforms as T

    from hpc_dl.train import data

    source, mean, std = SOURCES[dataset]
    source = source or channels
    mode = "L" if source == 1 else "RGB"
    batch = data.batcher(dataset, size, channels)
    if batch is not None:  # an in-memory set: the training loader's own collate, on a batch of one
        return lambda image: batch([(T.PILToTensor()(image.convert(mode)), 0)])[0][0]
    steps = [T.Resize((size, size), antialias=True)]  # imagefolder: per image, as in training
    steps += [T.Grayscale(num_output_channels=channels)] if source != channels else []
    steps += [T.ToTensor()]
    steps += [T.Normalize([mean] * channels, [std] * channels)] if mean is not None else []
    pipeline = T.Compose(steps)
    return lambda image: pipeline(image.convert(mode))


def open_image(image: Any, name: str = "image"):
    """A PIL image from a PIL image, bytes, a path or a file object (Streamlit's uploads are file objects)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image
    source = io.BytesIO(image) if isinstance(image, bytes) else image
    if hasattr(source, "seek"):  # a file object read before (an upload the page shows, then predicts on)
        source.seek(0)
    try:
        opened = Image.open(source)
        opened.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UsageError(f"{getattr(image, 'name', name)} is not an image this page can read: {exc}") from None
    return opened


@dataclass
class Predictor:
    run: RunDir
    spec: dict
    model: Any
    classes: list[str]
    device: Any
    preprocess: Callable
    epoch: int
    image_size: int
    task: str = "classification"

    @property
    def checkpoint(self) -> Path:
        return checkpoint_path(self.run)

    def top5(self, images: list) -> list[list[tuple[str, float]]]:
        """For each image (PIL, bytes, path or file object) its five likeliest classes, with probabilities."""
        import torch

        if not images:
            return []
        batch = torch.stack([self.preprocess(open_image(im, f"image {i + 1}")) for i, im in enumerate(images)])
        with torch.inference_mode():
            probs = torch.softmax(self.model(batch.to(self.device)).float(), dim=1).cpu()
        values, indices = probs.topk(min(5, probs.shape[1]), dim=1)
        return [
            [(self.classes[i], p) for p, i in zip(ps, ix, strict=True)]
            for ps, ix in zip(values.tolist(), indices.tolist(), strict=True)
        ]


def _weights(run: RunDir) -> tuple[dict, int]:
    """The checkpoint's model state_dict and its epoch; NotServable when it holds none."""
    import torch

    path = checkpoint_path(run)
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
    """The run (a RunDir, folder, id or unique prefix) as a Predictor on `device` (auto: a GPU if there is
    one); a detection run as a detect.Detector."""
    from .. import catalog
    from ..train import data, models

    run = run if isinstance(run, RunDir) else resolve(str(run))
    spec = check(run)
    weights, epoch = _weights(run)
    if getattr(catalog.MODELS.get(spec["model"]), "task", None) == "detection":
        from . import detect

        return detect.load(run, spec, weights, epoch, _device(device))
    head = [v for v in weights.values() if getattr(v, "ndim", 0) == 2]  # the last linear layer: (classes, features)
    count = head[-1].shape[0] if head else catalog.DATASETS[spec["dataset"]].classes or 10
    model = models.build(spec["model"], count)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        text = " ".join(str(exc).split())[:200]
        raise NotServable(f"run {run.run_id}: checkpoint does not fit model {spec['model']}: {text}") from None
    dev = _device(device)
    model.to(dev).eval()
    size = data.image_size_for(spec["model"], spec["dataset"], spec.get("image_size"))
    channels = catalog.MODELS[spec["model"]].channels
    return Predictor(
        run, spec, model, class_names(spec, count), dev, preprocess(spec["dataset"], size, channels), epoch, size
    )


CURVES = {"epoch_stop": ("loss", "accuracy"), "eval": ("test_loss", "test_accuracy", "test_map", "test_map50")}


def curves(run: RunDir) -> list[dict]:
    """Per epoch: loss, accuracy, test_loss, test_accuracy, and a detector's test_map and test_map50 (rank 0's
    events; a key the run's events lack is left out)."""
    events, _ = read_rank(run.rank_events(0))
    rows: dict[int, dict] = {}
    for e in events:
        if e["event"] not in ("epoch_stop", "eval") or not isinstance(e.get("epoch"), int):
            continue
        row = rows.setdefault(e["epoch"], {"epoch": e["epoch"]})
        row.update({k: e[k] for k in CURVES[e["event"]] if k in e})
    return [rows[k] for k in sorted(rows)]
