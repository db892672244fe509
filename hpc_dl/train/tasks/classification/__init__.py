"""Classification: images -> one of N classes. data.py: the catalog's data sets; byo.py: your own model or
data set; serve.py: the checkpoint as a top-5 classifier. Its step is the shared loop's own (train/loop.py:
cross-entropy over the logits, top-1 accuracy), so every strategy trains it with its own trainer as is.
"""

from __future__ import annotations

from .... import byo as contract
from ..base import Task


class ClassificationTask(Task):
    name = "classification"

    def load_data(self, cfg):
        args = (cfg.data_root, cfg.image_size, cfg.train_samples, cfg.test_samples, cfg.seed)
        if contract.is_ref(cfg.model) or contract.is_ref(cfg.dataset):  # yours (hpc_dl/byo.py): imported here
            from . import byo

            return byo.load(cfg.model, cfg.dataset, *args)
        from . import data

        return data.load(cfg.model, cfg.dataset, *args)

    def build_model(self, cfg, data):
        from . import byo

        return byo.model(cfg.model, data.num_classes, data.channels, data.image_size)

    def stages(self, cfg, model):
        from ... import models

        return models.layers(cfg.model, model)

    def predictor(self, run, spec, weights, epoch, device):
        from . import serve

        return serve.load(run, spec, weights, epoch, device)
