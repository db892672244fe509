"""Training and evaluating a detector on the shared loop: DetectionTrainer, COCO mAP, DataParallel for lists.

The metric names (`test_map`, ...) and the throughput unit are the task's entry in catalog.TASKS.

The step's loss is the sum of the model's loss dict (train mode). Evaluation runs each rank's shard of
the test set, gathers the detections over the ranks with the environment's own all-reduce (so it works
under torch.distributed and Horovod alike), and rank 0 scores them with pycocotools' COCOeval, the
reference implementation of COCO's AP; the three numbers are shared back. Epoch stats add
`iterations`, `time_per_iteration(s)` and `throughput(images/s)`; eval records carry `test_map`
(AP@[.5:.95]), `test_map50` and `test_map75`, and no accuracy.
"""

from __future__ import annotations

import contextlib
import io
import time

import torch
from torch import nn

from .... import catalog
from ...loop import Trainer
from .data import Images, Targets, unwrap_coco

INFO = catalog.TASKS["detection"]
MAP_KEYS = tuple(m.key for m in INFO.metrics)  # COCOeval stats[0:3]: AP@[.5:.95], AP@.5, AP@.75
(ITERATION,) = (m.key for m in INFO.epoch_metrics)  # time_per_iteration(s)
THROUGHPUT = f"throughput({INFO.throughput}/s)"
ROW = 7  # a detection as numbers: image_id, x, y, w, h, score, category_id (COCO's loadRes order)


def coco_map(ground_truth: dict, rows: list[list[float]]) -> dict[str, float | None]:
    """COCO box mAP of `rows` (see ROW) against a COCO instances dict; None where nothing can be scored
    (no ground-truth boxes), 0.0 for no detections."""
    if not ground_truth["annotations"]:
        return dict.fromkeys(MAP_KEYS)
    if not rows:
        return dict.fromkeys(MAP_KEYS, 0.0)
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {
            **ground_truth,
            "annotations": [{**a, "iscrowd": a.get("iscrowd", 0)} for a in ground_truth["annotations"]],
        }
        gt.createIndex()
        dt = gt.loadRes(np.asarray(rows, dtype=np.float64))
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = [im["id"] for im in ground_truth["images"]]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: (float(v) if v >= 0 else None) for k, v in zip(MAP_KEYS, ev.stats[:3], strict=True)}


def prediction_rows(outputs: list[dict], targets: Targets) -> list[list[float]]:
    """The model's eval-mode outputs (boxes x1 y1 x2 y2) as ROW lists."""
    rows = []
    for out, target in zip(outputs, targets, strict=True):
        boxes, scores, labels = (out[k].detach().float().cpu().tolist() for k in ("boxes", "scores", "labels"))
        for (x1, y1, x2, y2), score, label in zip(boxes, scores, labels, strict=True):
            rows.append([float(target["image_id"]), x1, y1, x2 - x1, y2 - y1, score, float(label)])
    return rows


def gather_rows(env, rows: list[list[float]]) -> list[list[float]]:
    """Every rank's rows, on every rank: each fills its own slice of a zero vector, then one sum."""
    counts = [0.0] * env.world_size
    counts[env.rank] = float(len(rows))
    counts = [int(c) for c in env.all_reduce(counts)]
    if env.world_size == 1:
        return rows
    flat = [0.0] * (sum(counts) * ROW)
    start = sum(counts[: env.rank]) * ROW
    flat[start : start + len(rows) * ROW] = [v for row in rows for v in row]
    flat = env.all_reduce(flat)
    return [flat[i : i + ROW] for i in range(0, len(flat), ROW)]


class DetectionTrainer(Trainer):
    """The shared loop with a detector's step and COCO evaluation."""

    def _run_batch(self, images: Images, targets: Targets) -> tuple:
        marks = [self.clock.mark()]
        self.optimizer.zero_grad()
        with self.autocast():
            loss = sum(self.model(images, targets).values())
        marks.append(self.clock.mark())
        self.scaler.scale(loss).backward()
        marks.append(self.clock.mark())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        marks.append(self.clock.mark())
        self.clock.step(self.phases, tuple(marks))
        return loss.detach() * len(images), 0, len(images)

    def _epoch_stats(self, epoch: int, acc: dict, rank_time: float) -> dict:
        stats = super()._epoch_stats(epoch, acc, rank_time)
        batch = self.train_loader.batch_size
        (iterations,) = self.env.all_reduce([float(-(-acc["samples"] // batch))], op="max")  # the busiest rank's
        seconds = stats["time(s)"]
        return {
            **stats,
            "accuracy": None,  # a detector has no accuracy: its eval has mAP
            "iterations": int(iterations),
            ITERATION: seconds / iterations if iterations else None,
            THROUGHPUT: stats["throughput(samples/s)"],
        }

    def _log_epoch(self, stats: dict) -> None:
        self.events.log.info(
            f"epoch %d/%d: %.2f s, %.1f {INFO.throughput}/s, %.3f s/iteration, loss %.4f",
            stats["epoch"],
            self.cfg.epochs,
            stats["time(s)"],
            stats["throughput(samples/s)"] or 0,
            stats[ITERATION] or 0,
            stats["loss"] or 0,
        )

    def _log_eval(self, record: dict) -> None:
        values = [record.get(k) or 0.0 for k in MAP_KEYS]
        self.events.log.info(
            "eval %d: mAP %.4f, AP50 %.4f, AP75 %.4f on %d images", record["epoch"], *values, record["test_samples"]
        )

    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict:
        self.model.eval()
        start = time.perf_counter()
        rows, count = [], 0
        for images, targets in self.test_loader:
            with self.autocast():
                outputs = self.model(images.to(self.env.device))
            rows += prediction_rows(outputs, targets)
            count += len(images)
        rows = gather_rows(self.env, rows)
        (total,) = self.env.all_reduce([float(count)])
        scores = coco_map(unwrap_coco(self.test_loader).ground_truth(), rows) if self.env.is_main else {}
        shared = self.env.all_reduce([scores.get(k) if scores.get(k) is not None else -1.0 for k in MAP_KEYS], "max")
        record = {k: (v if v >= 0 else None) for k, v in zip(MAP_KEYS, shared, strict=True)}
        return {
            "epoch": epoch,
            "test_loss": None,
            "test_accuracy": None,
            **record,
            "test_samples": int(total),
            "detections": len(rows),
            "time(s)": time.perf_counter() - start,
        }

    def _finish(self, total: float, last_eval: dict) -> dict:
        result = super()._finish(total, last_eval)
        result.update({k: last_eval.get(k) for k in MAP_KEYS})
        self.events.write_result(result)  # again, now with the mAP
        return result


class DetectionDataParallel(nn.DataParallel):
    """nn.DataParallel over a batch of images and targets: each GPU gets a slice of the lists
    (DataParallel's own scatter would cut every image along its first axis), and the outputs come back
    as one list of detections (eval) or the mean of each loss over the GPUs (train)."""

    def scatter(self, inputs, kwargs, device_ids):
        images, targets = inputs[0], (inputs[1] if len(inputs) > 1 else None)
        step = -(-len(images) // len(device_ids))
        parts = []
        for i, dev in enumerate(device_ids):
            chunk = slice(i * step, (i + 1) * step)
            if images[chunk]:
                part = (Images(images[chunk]).to(torch.device("cuda", dev)),)
                if targets is not None:
                    part += (Targets(targets[chunk]).to(torch.device("cuda", dev)),)
                parts.append(part)
        return tuple(parts), tuple({} for _ in parts)

    def gather(self, outputs, output_device):
        dev = torch.device("cuda", output_device) if isinstance(output_device, int) else output_device
        if isinstance(outputs[0], dict):
            return {k: torch.stack([o[k].to(dev) for o in outputs]).mean() for k in outputs[0]}
        return [{k: v.to(dev) for k, v in d.items()} for out in outputs for d in out]
