"""A classification run's checkpoint as a classifier: `load(run, spec, weights, epoch, device) -> Predictor`,
`Predictor.top5(images)`, and the serve page's view of it (uploads, each with its top-5 classes).

The model is built by hpc_dl.train.models from the run's spec and gets the checkpoint's state_dict. An
uploaded image is preprocessed as data.py prepares the run's data set: the data set's own colour mode,
resized to the run's image side, turned grey or RGB for the model, normalised with the data set's mean
and std. tests/test_serve.py checks that it gives the training pipeline's tensors bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .... import catalog
from ....runs import RunDir
from ... import models
from ..base import fitted
from ..images import IMAGE_TYPES, open_image
from . import data

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
# how data.py stores and normalises each data set: (channels of its images, mean, std);
# channels None: the model's (synthetic images are made for it); mean None: not normalised
SOURCES = {
    "fashion-mnist": (1, 0.5, 0.5),
    "mnist": (1, 0.5, 0.5),
    "digits": (1, 0.5, 0.5),
    "cifar10": (3, 0.5, 0.25),
    "imagefolder": (3, 0.5, 0.25),
    "synthetic": (None, None, None),
}


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
    """PIL image -> the (channels, size, size) tensor data.py would give for it."""
    from torchvision import transforms as T

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
    chart = ("accuracy per epoch", ("accuracy", "test_accuracy"))

    @property
    def checkpoint(self) -> Path:
        return self.run.last_checkpoint

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

    def view(self, ui) -> None:
        """Uploads, each beside its top-5 classes."""
        label = f"Images to classify ({self.image_size}x{self.image_size} after resizing)"
        files = ui.uploads(label, IMAGE_TYPES, self.classes)
        if not files:
            return
        for upload, top, left, right, name in ui.answered(files, self.top5, [1, 3]):
            left.image(upload, width=160)
            right.markdown(f"prediction for {name}: **{top[0][0]}** ({top[0][1]:.1%})")
            table = ui.pd.DataFrame({"class": [c for c, _ in top], "probability": [f"{q:.1%}" for _, q in top]})
            right.table(table.set_index("class"))


def load(run: RunDir, spec: dict, weights: dict, epoch: int, device) -> Predictor:
    """The checkpoint's classifier on `device`, with the run's classes and preprocessing."""
    head = [v for v in weights.values() if getattr(v, "ndim", 0) == 2]  # the last linear layer: (classes, features)
    count = head[-1].shape[0] if head else catalog.DATASETS[spec["dataset"]].classes or 10
    model = models.build(spec["model"], count)
    model = fitted(model, weights, run.run_id, spec["model"], device)
    size = data.image_size_for(spec["model"], spec["dataset"], spec.get("image_size"))
    channels = catalog.MODELS[spec["model"]].channels
    return Predictor(
        run, spec, model, class_names(spec, count), device, preprocess(spec["dataset"], size, channels), epoch, size
    )
