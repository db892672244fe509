"""Language modelling: bytes -> the next byte. model.py: the decoder-only transformer (gpt-tiny, gpt-small,
gpt-medium); data.py: the byte data sets cut into blocks; train.py: the step over every token and the
perplexity.

Which strategies can train it, and which of their options it refuses, is its catalog.TASKS entry. Not done
yet: serving (a prompt box on the serve page), pipeline stages, horovod, psgd.
"""

from __future__ import annotations

from ....errors import NotServable
from ...data import DataError
from ..base import Task, over


class LanguageTask(Task):
    name = "language"

    def load_data(self, cfg):
        from . import data
        from .model import context_of

        try:
            context = context_of(cfg.model)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        return data.load(cfg.dataset, cfg.data_root, context, cfg.train_samples, cfg.test_samples)

    def build_model(self, cfg, data):
        from .model import build_model

        return build_model(cfg.model, checkpointing=cfg.activation_checkpointing)

    def stages(self, cfg, model):
        return model.sequence()

    def trainer(self, base):
        from .train import LanguageTrainer

        return over(LanguageTrainer, base)

    def predictor(self, run, spec, weights, epoch, device):
        raise NotServable(f"run {run.run_id}: serving a language model (a prompt box) is not done yet")
