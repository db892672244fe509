"""Detection (seed 003): the COCO loader on the generated shapes, COCO mAP on hand-made cases, the
strategies that refuse a detector, and the seed-003 study's real 2-worker DDP point through collect."""

import json
import math

import pytest
import torch

from hpc_dl.errors import SpecError
from hpc_dl.spec import JobSpec
from hpc_dl.train.tasks.detection import data as detection
from hpc_dl.train.tasks.detection import shapes
from hpc_dl.train.tasks.detection.train import coco_map, gather_rows


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return shapes.generate(tmp_path_factory.mktemp("coco") / "shapes", train=6, val=4, size=64, seed=1)


def test_generated_layout_and_loader(coco_root):
    assert sorted(p.name for p in (coco_root / "train2017").iterdir())[:2] == ["000000000001.jpg", "000000000002.jpg"]
    instances = json.loads((coco_root / "annotations" / "instances_val2017.json").read_text())
    assert [c["name"] for c in instances["categories"]] == ["rectangle", "ellipse", "triangle"]
    ds = detection.load(str(coco_root), None, None, None)
    assert (len(ds.train), len(ds.test), ds.num_classes, ds.image_size) == (6, 4, 4, detection.DEFAULT_SIZE)
    assert len(detection.load(str(coco_root), 64, 5, 3).train) == 5
    image, target = ds.test[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    first = [a for a in instances["annotations"] if a["image_id"] == 1]
    x, y, w, h = first[0]["bbox"]
    assert target["image_id"] == 1
    assert target["boxes"].shape == (len(first), 4)
    assert target["boxes"][0].tolist() == [x, y, x + w, y + h]  # COCO x,y,w,h -> x1,y1,x2,y2
    assert target["labels"].tolist() == [a["category_id"] for a in first]
    assert sum(len(ds.test[i][1]["boxes"]) for i in range(4)) == len(instances["annotations"])


def test_collate_keeps_variable_sizes_and_moves():
    batch = [
        (torch.zeros(3, 10, 12), {"boxes": torch.zeros(0, 4), "image_id": 1}),
        (torch.zeros(3, 7, 5), {"image_id": 2}),
    ]
    images, targets = detection.collate(batch)
    assert [tuple(i.shape) for i in images] == [(3, 10, 12), (3, 7, 5)]
    moved_images, moved = images.to("cpu"), targets.to("cpu")
    assert isinstance(moved_images, detection.Images) and [t["image_id"] for t in moved] == [1, 2]


GT = {
    "images": [{"id": 1, "width": 200, "height": 200}, {"id": 2, "width": 200, "height": 200}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": 10000.0, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [50, 50, 100, 100], "area": 10000.0, "iscrowd": 0},
    ],
    "categories": [{"id": 1, "name": "rectangle"}],
}


def rows(*dets):  # (image_id, x, y, w, h, score, category)
    return [list(map(float, d)) for d in dets]


def test_map_perfect_and_none():
    perfect = rows((1, 0, 0, 100, 100, 0.9, 1), (2, 50, 50, 100, 100, 0.8, 1))
    assert coco_map(GT, perfect) == {"test_map": 1.0, "test_map50": 1.0, "test_map75": 1.0}
    assert coco_map(GT, []) == {"test_map": 0.0, "test_map50": 0.0, "test_map75": 0.0}


def test_map_hand_computed():
    # one of two boxes found, precision 1: precision is 1 at the 51 recall points 0, .01, ..., .5 of 101
    half = coco_map(GT, rows((1, 0, 0, 100, 100, 0.9, 1)))
    assert all(math.isclose(v, 51 / 101) for v in half.values())
    # IoU 0.62 for both: a match at IoU thresholds .50, .55, .60 of the ten, none at .75
    loose = coco_map(GT, rows((1, 0, 0, 100, 62, 0.9, 1), (2, 50, 50, 100, 62, 0.8, 1)))
    assert loose == {"test_map": pytest.approx(0.3), "test_map50": 1.0, "test_map75": 0.0}
    wrong_class = coco_map({**GT, "categories": GT["categories"] + [{"id": 2}]}, rows((1, 0, 0, 100, 100, 0.9, 2)))
    assert wrong_class == {"test_map": 0.0, "test_map50": 0.0, "test_map75": 0.0}


class FakeEnv:
    """Two ranks in one process: all_reduce sums what both contribute."""

    def __init__(self, rank, other):
        self.rank, self.world_size, self.other = rank, 2, other

    def all_reduce(self, values, op="sum"):
        theirs = self.other(len(values))
        return [a + b for a, b in zip(values, theirs, strict=True)]


def test_gather_rows_puts_each_rank_in_its_slice():
    mine, theirs = rows((1, 0, 0, 1, 1, 0.5, 1)), rows((2, 0, 0, 2, 2, 0.7, 1), (3, 0, 0, 3, 3, 0.9, 1))
    # rank 0's view: rank 1 contributes its count, then its rows after rank 0's
    replies = iter([[0.0, 2.0], [0.0] * 7 + [v for r in theirs for v in r]])
    env = FakeEnv(0, lambda n: next(replies))
    assert gather_rows(env, mine) == mine + theirs


@pytest.mark.parametrize("strategy", ["pipeline", "psgd", "hogwild", "kfold"])
def test_strategies_that_cannot_train_a_detector(strategy):
    extra = {"folds": 2, "fold": 0} if strategy == "kfold" else {"gpus": 2}
    with pytest.raises(SpecError) as err:
        JobSpec(strategy=strategy, model="fasterrcnn_mobilenet_v3_large_fpn", dataset="coco", **extra)
    assert str(err.value) == (
        f"strategy '{strategy}' cannot train detection model 'fasterrcnn_mobilenet_v3_large_fpn' "
        "(use ddp, dp, fsdp or horovod)"
    )


def test_horovod_gradient_accumulation_is_refused_for_a_detector():
    with pytest.raises(SpecError) as err:
        JobSpec(strategy="horovod", model="fasterrcnn_mobilenet_v3_large_fpn", dataset="coco", backward_passes=2)
    assert str(err.value) == (
        "--backward-passes does not apply to detection model 'fasterrcnn_mobilenet_v3_large_fpn' "
        "(horovod accumulates over the shared step, not a detector's own; raise --batch-size instead)"
    )
    JobSpec(strategy="horovod", model="fasterrcnn_mobilenet_v3_large_fpn", dataset="coco", backward_passes=1)


def test_detector_needs_detection_data_and_the_cli_says_so(hpcdl):
    result = hpcdl("submit", "--profile", "local", "--strategy", "psgd", "--model", "fasterrcnn_resnet50_fpn",
                   "--dataset", "coco", "--dry-run")  # fmt: skip
    assert result.exit_code != 0
    assert "strategy 'psgd' cannot train detection model 'fasterrcnn_resnet50_fpn' (use ddp, dp, fsdp or horovod)" in (
        result.output
    )
    with pytest.raises(SpecError, match="^model 'fasterrcnn_resnet50_fpn' is a detection model: choose a detection"):
        JobSpec(model="fasterrcnn_resnet50_fpn")
    for strategy in ("ddp", "dp", "fsdp", "horovod"):
        JobSpec(strategy=strategy, model="fasterrcnn_mobilenet_v3_large_fpn", dataset="coco")


@pytest.mark.slow
def test_seed_003_ddp_point_learns_then_collect(hpcdl, runs_root, tmp_path):
    """The seed-003 study's DDP point (its spec, 2 workers, the default generated set): a few epochs from an
    untrained detector visibly raise mAP, and collect shows time/iteration and mAP where accuracy goes."""
    from hpc_dl.analysis import collect as col

    from hpc_dl import studies
    from hpc_dl.events import read_rank
    from hpc_dl.runs import RunDir

    spec = studies.load("seed-003-dp-vs-ddp").spec
    flags = [part for key, value in spec.items() for part in (f"--{key.replace('_', '-')}", str(value))]
    result = hpcdl("submit", "--profile", "local", "--strategy", "ddp", "--gpus", "2", *flags, "--wait")
    assert result.exit_code == 0, result.output
    (run,) = [RunDir(p) for p in runs_root.glob("default/*-ddp-*")]
    evals = [e for e in read_rank(run.rank_events(0))[0] if e["event"] == "eval"]
    assert [e["epoch"] for e in evals] == [1, 2, 3]
    first, last = evals[0], evals[-1]
    assert last["test_map50"] >= 0.2 and last["test_map50"] >= first["test_map50"] + 0.1, evals
    assert last["test_map"] >= 0.03 and last["test_map"] > first["test_map"], evals
    report = col.collect([runs_root])
    col.write(report, tmp_path / "results", plots=False)
    row = report.scaling.iloc[0]
    assert (row["strategy"], row["workers"], row["model"]) == ("ddp", 2, "fasterrcnn_mobilenet_v3_large_fpn")
    assert row["time_per_iteration_s"] > 0 and math.isnan(row["test_accuracy"])
    assert all(0.0 <= row[k] <= 1.0 for k in ("test_map", "test_map50", "test_map75"))
    assert row["test_map"] == pytest.approx(last["test_map"])
    epoch = report.epochs.iloc[0]
    assert epoch["samples"] == spec["train_samples"] and epoch["time_per_iteration_s"] > 0
    header = next(line for line in report.markdown.splitlines() if line.startswith("| strategy"))
    shown = [h.strip() for h in header.strip("|").split("|")]
    assert shown[shown.index("time/epoch (s)") + 1] == "time/iter (s)"
    assert shown[-6:] == ["mAP", "AP50", "AP75", "peak memory (MiB)", "resource", "resource-h"]
    assert "test acc" not in shown
