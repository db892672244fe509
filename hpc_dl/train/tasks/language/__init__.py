"""Language modelling: bytes -> the next byte. model.py: the decoder-only transformer (gpt-tiny, gpt-small,
gpt-medium), also laid out as layers for pipeline stages; data.py: the byte data sets cut into blocks;
train.py: the loss over every token and the perplexity; serve.py: the checkpoint continuing a prompt.

Which strategies can train it, and which of their options it refuses, is its catalog.TASKS entry.
"""

from __future__ import annotations

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
        from .serve import load

        return load(run, spec, weights, epoch, device)
