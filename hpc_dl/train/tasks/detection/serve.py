"""A detection run's checkpoint as a box detector: `load(run, spec, weights, epoch, device) -> Detector`,
and the serve page's view of it (uploads with their boxes drawn, above a score threshold).

The model is rebuilt as model.py builds it for training (same class count, same image side)
and gets the checkpoint's state_dict. An upload is read as the `coco` data set reads an image (RGB, [0, 1]);
the model resizes it itself. `Detector.detect` returns each image's boxes above a score threshold with the
category names of the run's COCO annotations; `Detector.draw` draws them on the image for the page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ....errors import NotServable
from ....runs import RunDir
from ..base import fitted
from ..images import IMAGE_TYPES, open_image
from . import shapes
from .data import DEFAULT_SIZE
from .model import build_model

THRESHOLD = 0.5  # the page's default score threshold


def category_names(spec: dict) -> dict[int, str]:
    """Category id -> name from the run's COCO annotations (the generated shapes set's without --data-root)."""
    root = spec.get("data_root")
    if not root:
        return {c["id"]: c["name"] for c in shapes.CATEGORIES}
    for split in ("val", "train"):
        path = Path(root) / "annotations" / f"instances_{split}2017.json"
        try:
            return {c["id"]: c["name"] for c in json.loads(path.read_text())["categories"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return {}


@dataclass
class Detector:
    run: RunDir
    spec: dict
    model: Any
    categories: dict[int, str]
    device: Any
    epoch: int
    image_size: int
    task: str = "detection"

    chart = ("COCO mAP per epoch (AP@[.5:.95] and AP50 on the test images)", ("test_map", "test_map50"))

    @property
    def checkpoint(self) -> Path:
        return self.run.last_checkpoint

    @property
    def classes(self) -> list[str]:
        return [self.categories[k] for k in sorted(self.categories)]

    def tensor(self, image):
        """An image (PIL, bytes, path or file object) as the coco data set reads one: RGB floats in [0, 1]."""
        from torchvision.transforms.functional import pil_to_tensor

        return pil_to_tensor(open_image(image).convert("RGB")).float() / 255.0

    def detect(self, images: list, threshold: float = THRESHOLD) -> list[list[tuple[str, float, list[float]]]]:
        """For each image, its (category, score, [x1, y1, x2, y2]) boxes scoring at least `threshold`, best first."""
        import torch

        if not images:
            return []
        tensors = [self.tensor(im).to(self.device) for im in images]
        with torch.inference_mode():
            outputs = self.model(tensors)
        return [
            [
                (self.categories.get(label, f"category {label}"), score, box)
                for box, label, score in zip(
                    out["boxes"].tolist(), out["labels"].tolist(), out["scores"].tolist(), strict=True
                )
                if score >= threshold
            ]
            for out in outputs
        ]

    def draw(self, image, found: list[tuple[str, float, list[float]]]):
        """The image with its boxes and labels drawn on it (a PIL image)."""
        import torch
        from torchvision.transforms.functional import to_pil_image
        from torchvision.utils import draw_bounding_boxes

        pixels = (self.tensor(image) * 255).round().to(torch.uint8)
        if not found:
            return to_pil_image(pixels)
        boxes = torch.tensor([box for _, _, box in found], dtype=torch.float32)
        labels = [f"{name} {score:.0%}" for name, score, _ in found]
        return to_pil_image(draw_bounding_boxes(pixels, boxes, labels, colors="red", width=2))

    def view(self, ui) -> None:
        """Uploads, each drawn with the boxes found in it above the threshold the slider sets."""
        label = f"Images to search for objects (the model resizes them to {self.image_size} px on the short side)"
        files = ui.uploads(label, IMAGE_TYPES, self.classes)
        threshold = ui.st.slider("score threshold", 0.05, 1.0, THRESHOLD, 0.05)
        if not files:
            return
        for upload, boxes, left, right, name in ui.answered(files, lambda f: self.detect(f, threshold), [1, 2]):
            left.image(self.draw(upload, boxes), width=320)
            right.markdown(f"{len(boxes)} object(s) in {name} with a score of at least {threshold:.2f}")
            if boxes:
                rows = [(c, f"{q:.1%}", ", ".join(f"{v:.0f}" for v in b)) for c, q, b in boxes]
                right.table(ui.pd.DataFrame(rows, columns=["category", "score", "box (x1, y1, x2, y2)"]))


def load(run: RunDir, spec: dict, weights: dict, epoch: int, device) -> Detector:
    """The checkpoint's Faster R-CNN on `device`, with the run's category names."""
    heads = [k for k in weights if k.endswith("cls_score.weight")]  # the box predictor: (classes, features)
    if not heads:
        raise NotServable(f"run {run.run_id}: checkpoint holds no Faster R-CNN box predictor")
    count = weights[heads[0]].shape[0]
    size = spec.get("image_size") or DEFAULT_SIZE
    model = build_model(spec["model"], count, size)
    model = fitted(model, weights, run.run_id, spec["model"], device)
    return Detector(run, spec, model, category_names(spec), device, epoch, size)
