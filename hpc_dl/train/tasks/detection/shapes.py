"""A small offline COCO-format detection set made here: coloured rectangles, ellipses and triangles.

    python -m hpc_dl.train.tasks.detection.shapes --out DIR --train 512 --val 128 [--size 128] [--seed 0]

writes the standard layout, `DIR/annotations/instances_{train,val}2017.json` and
`DIR/{train,val}2017/*.jpg`, with 1-3 shapes per image on a noisy grey background, boxes `[x, y, w, h]`
in pixels (COCO's format), categories 1 rectangle, 2 ellipse, 3 triangle. Each category has its own hue
(reddish, greenish, bluish, with random shade), so an untrained detector learns to tell them apart in a
few hundred steps and what is left to learn is mostly where the boxes are: on CPU, mAP visibly rises
within the seed-003 study's few epochs (with random colours it stayed near 0.002 there). Without
--data-root the `coco` data set makes one such set once in the data cache (`ensure_default`), the way
Fashion-MNIST is unpacked there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

CATEGORIES = [
    {"id": 1, "name": "rectangle", "supercategory": "shape"},
    {"id": 2, "name": "ellipse", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
]
PALETTE = {1: (220, 40, 40), 2: (40, 200, 40), 3: (40, 80, 230)}  # each category's hue, shaded per shape
SHADE = 35  # each channel of a shape's colour lies within this of its category's
VERSION = 2  # of the drawing: part of the default set's cache name, so a change makes a new set
DEFAULT = {"train": 512, "val": 128, "size": 128, "seed": 0}  # what `coco` generates without --data-root


def _overlaps(box: list[int], boxes: list[list[int]]) -> bool:
    x, y, w, h = box
    return any(x < bx + bw and bx < x + w and y < by + bh and by < y + h for bx, by, bw, bh in boxes)


def _draw_shape(draw, category: int, box: list[int], colour: tuple[int, int, int], rng: random.Random) -> list[int]:
    """Draw one shape inside `box` ([x, y, w, h]); returns its exact bounding box, [x, y, w, h]."""
    x, y, w, h = box
    if category == 1:
        draw.rectangle([x, y, x + w - 1, y + h - 1], fill=colour)
        return [x, y, w, h]
    if category == 2:
        draw.ellipse([x, y, x + w - 1, y + h - 1], fill=colour)
        return [x, y, w, h]
    apex = x + rng.randint(0, w - 1)  # a triangle with its base at the bottom of the box
    points = [(apex, y), (x, y + h - 1), (x + w - 1, y + h - 1)]
    draw.polygon(points, fill=colour)
    return [x, y, w, h]


def _image(size: int, rng: random.Random):
    """One image and its shapes as (category, [x, y, w, h]) pairs."""
    import numpy as np
    from PIL import Image, ImageDraw

    base = [rng.randint(60, 200)] * 3
    noise = np.random.default_rng(rng.getrandbits(32)).integers(-20, 21, (size, size, 3))
    img = Image.fromarray(np.clip(np.array(base) + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    shapes: list[tuple[int, list[int]]] = []
    for _ in range(rng.randint(1, 3)):
        for _try in range(20):
            w, h = rng.randint(size // 6, size // 2), rng.randint(size // 6, size // 2)
            box = [rng.randint(0, size - w), rng.randint(0, size - h), w, h]
            if not _overlaps(box, [b for _, b in shapes]):
                break
        else:
            continue
        category = rng.randint(1, 3)
        colour = tuple(min(255, max(0, c + rng.randint(-SHADE, SHADE))) for c in PALETTE[category])
        shapes.append((category, _draw_shape(draw, category, box, colour, rng)))
    return img, shapes


def write_split(root: Path, split: str, count: int, size: int, seed: int) -> dict:
    """Write `count` images to root/<split>2017 and their annotations; returns the instances dict."""
    rng = random.Random(f"{seed}-{split}")
    folder = root / f"{split}2017"
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(1, count + 1):
        img, shapes = _image(size, rng)
        name = f"{i:012d}.jpg"
        img.save(folder / name, quality=95)
        images.append({"id": i, "file_name": name, "width": size, "height": size})
        for category, (x, y, w, h) in shapes:
            ann = {"id": len(annotations) + 1, "image_id": i, "category_id": category, "iscrowd": 0}
            annotations.append({**ann, "bbox": [x, y, w, h], "area": float(w * h)})
    instances = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(instances))
    return instances


def generate(out: Path, train: int, val: int, size: int = 128, seed: int = 0) -> Path:
    """The whole set under `out`, written to a temporary folder first and moved into place (safe when
    several ranks make it at once: the first one to finish wins, the others drop theirs)."""
    out = Path(out)
    if (out / "annotations" / "instances_val2017.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    write_split(tmp, "train", train, size, seed)
    write_split(tmp, "val", val, size, seed)
    try:
        os.replace(tmp, out)
    except OSError:  # another process got there first (or `out` is a non-empty folder)
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "annotations" / "instances_val2017.json").exists():
            raise
    return out


def ensure_default(cache: Path) -> Path:
    """The default generated set in the data cache, made on first use."""
    d = DEFAULT
    return generate(cache / f"coco-shapes-v{VERSION}-{d['train']}-{d['val']}-{d['size']}px-s{d['seed']}", **d)


def main(argv: list[str] | None = None) -> int:
    prog = "python -m hpc_dl.train.tasks.detection.shapes"
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder to create (COCO layout)")
    p.add_argument("--train", type=int, default=DEFAULT["train"], help="training images")
    p.add_argument("--val", type=int, default=DEFAULT["val"], help="validation images")
    p.add_argument("--size", type=int, default=DEFAULT["size"], help="image side in pixels")
    p.add_argument("--seed", type=int, default=DEFAULT["seed"])
    a = p.parse_args(argv)
    if (a.out / "annotations" / "instances_val2017.json").exists():
        p.error(f"{a.out} already holds a COCO set; choose another --out")
    root = generate(a.out, a.train, a.val, a.size, a.seed)
    print(f"wrote {a.train} training and {a.val} validation images ({a.size}x{a.size}) to {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
