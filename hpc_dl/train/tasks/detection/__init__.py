"""Detection (seed 003): images -> labelled boxes. data.py: COCO-format folders and list batches; model.py:
torchvision's Faster R-CNN; train.py: its step, COCO mAP and DataParallel over lists; shapes.py: the
generated COCO-format set; serve.py: the checkpoint as a box detector.

Which strategies can train it, and which of their options it refuses, is its catalog.TASKS entry.
"""

from __future__ import annotations

from ..base import Task, over


class DetectionTask(Task):
    name = "detection"

    def load_data(self, cfg):
        from .data import load

        return load(cfg.data_root, cfg.image_size, cfg.train_samples, cfg.test_samples)

    def build_model(self, cfg, data):
        from .model import build_model

        return build_model(cfg.model, data.num_classes, data.image_size)

    def trainer(self, base):
        from .train import DetectionTrainer

        return over(DetectionTrainer, base)

    def data_parallel(self, model, device_ids):
        from .train import DetectionDataParallel

        return DetectionDataParallel(model, device_ids=device_ids)

    def predictor(self, run, spec, weights, epoch, device):
        from .serve import load

        return load(run, spec, weights, epoch, device)
