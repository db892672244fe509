"""Detection's data: COCO-format folders, and batches of images of any size with their target dicts.

The `coco` data set reads the standard layout (`<root>/annotations/instances_{train,val}2017.json`,
`<root>/{train,val}2017/*.jpg`), or any folder in that format; without --data-root it is the shapes set
that shapes.py generates once into the data cache. An item is (image (3, H, W) in [0, 1],
target {"boxes": (N, 4) x1 y1 x2 y2 in pixels, "labels": (N,), "image_id": int}); labels are COCO's
category ids, so the model has max(id) + 1 classes (0 is the background). A batch is a list of images of
any size and a list of targets (`collate`); both move with `.to(device)` like tensors, so the shared
loop carries them unchanged. The model is model.py's; the trainer and the mAP are train.py's.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ...data import Data, DataError, cache_dir
from .shapes import ensure_default

DEFAULT_SIZE = 128  # image side the model works at unless --image-size says otherwise


class CocoDataset(Dataset):
    """One split of a COCO-format folder, the first `limit` images by id (all when None)."""

    def __init__(self, root: Path, split: str, limit: int | None = None):
        self.root, self.split = Path(root), split
        ann = self.root / "annotations" / f"instances_{split}2017.json"
        if not ann.is_file():
            raise DataError(f"coco: {ann} not found (expected <root>/annotations/instances_{split}2017.json)")
        data = json.loads(ann.read_text())
        images = sorted(data["images"], key=lambda im: im["id"])
        self.images = images if limit is None else images[:limit]
        keep = {im["id"] for im in self.images}
        self.annotations: dict[int, list[dict]] = {i: [] for i in keep}
        for a in data["annotations"]:
            if a["image_id"] in keep:
                self.annotations[a["image_id"]].append(a)
        self.categories = data["categories"]
        self.num_classes = max(c["id"] for c in self.categories) + 1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        info = self.images[i]
        with Image.open(self.root / f"{self.split}2017" / info["file_name"]) as im:
            image = pil_to_tensor(im.convert("RGB")).float() / 255.0
        boxes, labels = [], []
        for a in self.annotations[info["id"]]:
            x, y, w, h = a["bbox"]
            if a.get("iscrowd", 0) or w <= 1 or h <= 1:
                continue
            boxes.append([x, y, x + w, y + h])
            labels.append(a["category_id"])
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "image_id": info["id"],
        }
        return image, target

    def ground_truth(self) -> dict:
        """This split's images and annotations as a COCO instances dict (what the evaluator reads)."""
        anns = [a for im in self.images for a in self.annotations[im["id"]]]
        return {"images": self.images, "annotations": anns, "categories": self.categories}


class Images(list):
    """A batch of images of any size: a list that moves to a device like a tensor."""

    def to(self, device, non_blocking: bool = False) -> Images:
        return Images(t.to(device, non_blocking=non_blocking) for t in self)


class Targets(list):
    """A batch of target dicts: a list that moves its tensors to a device."""

    def to(self, device, non_blocking: bool = False) -> Targets:
        return Targets(
            {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v for k, v in t.items()}
            for t in self
        )


def collate(batch: list) -> tuple[Images, Targets]:
    images, targets = zip(*batch, strict=True) if batch else ((), ())
    return Images(images), Targets(targets)


def load(data_root: str | None, image_size: int | None, train_samples: int | None, test_samples: int | None) -> Data:
    """The COCO folder (or the generated shapes set), cut to the requested image counts, batched by `collate`."""
    root = Path(data_root) if data_root else ensure_default(cache_dir())
    train, test = CocoDataset(root, "train", train_samples), CocoDataset(root, "val", test_samples)
    size = image_size or DEFAULT_SIZE
    return Data(train, test, max(train.num_classes, test.num_classes), 3, size, collate=collate)


def unwrap_coco(loader: DataLoader) -> CocoDataset:
    """The CocoDataset under a loader's (possibly Subset-wrapped) dataset."""
    ds = loader.dataset
    while isinstance(ds, Subset):
        ds = ds.dataset
    return ds
