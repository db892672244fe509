"""Detection next to classification: COCO-format data, torchvision's Faster R-CNN, its loaders and setup.

The `coco` data set reads the standard layout (`<root>/annotations/instances_{train,val}2017.json`,
`<root>/{train,val}2017/*.jpg`), or any folder in that format; without --data-root it is the shapes set
that hpc_dl.train.shapes generates once into the data cache. An item is (image (3, H, W) in [0, 1],
target {"boxes": (N, 4) x1 y1 x2 y2 in pixels, "labels": (N,), "image_id": int}); labels are COCO's
category ids, so the model has max(id) + 1 classes (0 is the background). A batch is a list of images of
any size and a list of targets (`collate`); both move with `.to(device)` like tensors, so the shared
loop carries them unchanged. The trainer and the mAP are in detection_train.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from .. import catalog

DEFAULT_SIZE = 128  # image side the model works at unless --image-size says otherwise
# Below SMALL px (a few objects an image): fewer proposals and sampled boxes than COCO's defaults, which are
# sized for 800 px images with many objects. The box head's two 1024-wide layers over each sampled box are
# most of a CPU step: 64 boxes an image took 0.67 s a step (batch 4, 128 px, 1 thread), 16 take 0.24 s.
# The anchors shrink with the image (ANCHOR_SIDE: COCO's 32-512 px anchors at 512 px), so at 128 px they
# are 8-128 px, the size of the objects; that doubled the shapes set's mAP after 300 steps.
SMALL = 512
ANCHOR_SIDE = 512
SMALL_IMAGES = {
    "rpn_pre_nms_top_n_train": 300,
    "rpn_post_nms_top_n_train": 100,
    "rpn_pre_nms_top_n_test": 300,
    "rpn_post_nms_top_n_test": 100,
    "rpn_batch_size_per_image": 64,
    "box_batch_size_per_image": 16,
}
WEIGHTS_ENV = "HPCDL_DETECTION_WEIGHTS"  # a state_dict file to start from (nothing is downloaded)


def is_detection(model: str) -> bool:
    info = catalog.MODELS.get(model)
    return info is not None and getattr(info, "task", "classification") == "detection"


class DataError(RuntimeError):
    """A COCO folder could not be read; the message says what is missing."""


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


@dataclass
class DetectionData:
    train: CocoDataset
    test: CocoDataset
    num_classes: int
    channels: int
    image_size: int


def load(data_root: str | None, image_size: int | None, train_samples: int | None, test_samples: int | None):
    """The COCO folder (or the generated shapes set), cut to the requested image counts."""
    if data_root:
        root = Path(data_root)
    else:
        from .data import cache_dir
        from .shapes import ensure_default

        root = ensure_default(cache_dir())
    train, test = CocoDataset(root, "train", train_samples), CocoDataset(root, "val", test_samples)
    size = image_size or DEFAULT_SIZE
    return DetectionData(train, test, max(train.num_classes, test.num_classes), 3, size)


def build_model(name: str, num_classes: int, image_size: int) -> nn.Module:
    """torchvision's Faster R-CNN, untrained (weights=None, weights_backbone=None), resizing images to
    `image_size` on their short side (below SMALL px: SMALL_IMAGES and scaled anchors);
    $HPCDL_DETECTION_WEIGHTS names a state_dict to start from (tensors whose shape differs, such as another
    class count's heads, are left as built)."""
    from torchvision.models import detection as tvd

    max_size = max(image_size, round(image_size * 1333 / 800))
    small = SMALL_IMAGES if image_size < SMALL else {}
    model = getattr(tvd, name)(
        weights=None, weights_backbone=None, num_classes=num_classes, min_size=image_size, max_size=max_size, **small
    )
    if small:
        model.rpn.anchor_generator = scaled_anchors(model.rpn.anchor_generator, image_size / ANCHOR_SIDE)
    path = os.environ.get(WEIGHTS_ENV)
    if path:
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)
    return model


def scaled_anchors(anchors, factor: float):
    """The same anchors (count per location and aspect ratios, so the RPN head still fits) times `factor`."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    sizes = tuple(tuple(max(1, round(side * factor)) for side in level) for level in anchors.sizes)
    return AnchorGenerator(sizes, anchors.aspect_ratios)


def make_loaders(ds: DetectionData, batch_size: int, rank: int, world_size: int, seed: int, device, workers):
    """(train loader, its sampler, test loader): this rank's shard of each, batches via `collate`, decoded
    by `workers` DataLoader processes (loaders.loader). Each rank evaluates every world_size-th test image,
    so together they cover the set exactly once."""
    from .loaders import loader

    sampler = DistributedSampler(ds.train, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    train = loader(ds.train, collate, batch_size, device, workers, sampler)
    shard = Subset(ds.test, range(rank, len(ds.test), world_size))
    return train, sampler, loader(shard, collate, batch_size, device, workers)


def setup(cfg, env, batch_size: int | None = None, rank: int | None = None, world_size: int | None = None):
    """setup.setup for a detection model: the same seed everywhere, the data, the model on its device,
    this rank's loaders. dp passes its own batch size and a single rank."""
    from .setup import Setup

    torch.manual_seed(cfg.seed)
    ds = load(cfg.data_root, cfg.image_size, cfg.train_samples, cfg.test_samples)
    model = build_model(cfg.model, ds.num_classes, ds.image_size).to(env.device)
    rank = env.rank if rank is None else rank
    world_size = env.world_size if world_size is None else world_size
    size, workers = batch_size or cfg.batch_size, cfg.loader_workers
    train, sampler, test = make_loaders(ds, size, rank, world_size, cfg.seed, env.device, workers)
    return Setup(ds, model, train, sampler, test, task="detection")


def unwrap_coco(loader: DataLoader) -> CocoDataset:
    """The CocoDataset under a loader's (possibly Subset-wrapped) dataset."""
    ds = loader.dataset
    while isinstance(ds, Subset):
        ds = ds.dataset
    return ds
