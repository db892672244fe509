"""Training and evaluating a language model on the shared loop: LanguageTrainer.

The metric names and the throughput unit are the task's entry in catalog.TASKS. The loss is the
cross-entropy over every token of a batch of blocks; the step is the shared loop's own, with this loss
(`loss_fn`: a block's loss is its summed token loss over the block length, so the loop's per-sample mean
is the mean token loss), so every strategy's own step (pipeline stages, horovod's accumulation, psgd's
averaging) trains it as it is. The loop counts samples, which are blocks here, and every block has the
same length, so tokens are samples x context. Epoch stats add `tokens` and `throughput(tokens/s)`; eval
records carry `test_loss` (mean token loss, nats) and `test_perplexity` = exp(test_loss), and no accuracy.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .... import catalog
from ...loop import Trainer
from .model import context_of

INFO = catalog.TASKS["language"]
(PERPLEXITY,) = (m.key for m in INFO.metrics)  # test_perplexity
(THROUGHPUT,) = (m.key for m in INFO.epoch_metrics)  # throughput(tokens/s)


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The summed cross-entropy of every token's logits (batch, tokens, vocab) against its next byte."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="sum")


def perplexity(loss: float | None) -> float | None:
    """exp(mean token loss); None without a loss, inf past what a float holds."""
    if loss is None:
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


class LanguageTrainer(Trainer):
    """The shared loop with a language model's step (cross-entropy per token) and evaluation (perplexity)."""

    def loss_fn(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each block's mean token loss, summed over the batch's blocks (the loop's per-sample sum)."""
        return token_loss(out, y) / y.shape[1]

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> int:
        return 0  # a language model's quality is its perplexity, not an accuracy

    def _epoch_stats(self, epoch: int, acc: dict, rank_time: float) -> dict:
        stats = super()._epoch_stats(epoch, acc, rank_time)
        tokens = stats["samples"] * context_of(self.cfg.model)
        seconds = stats["time(s)"]
        return {
            **stats,
            "accuracy": None,  # a language model's quality is its perplexity
            "tokens": tokens,
            THROUGHPUT: tokens / seconds if seconds > 0 else None,
        }

    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict:
        record = super().evaluate(epoch)
        return {
            **record,
            "test_accuracy": None,
            PERPLEXITY: perplexity(record["test_loss"]),
            "test_tokens": record["test_samples"] * context_of(self.cfg.model),
        }

    def _log_epoch(self, stats: dict) -> None:
        self.events.log.info(
            f"epoch %d/%d: %.2f s, %.1f {INFO.throughput}/s, loss %.4f",
            stats["epoch"],
            self.cfg.epochs,
            stats["time(s)"],
            stats[THROUGHPUT] or 0,
            stats["loss"] or 0,
        )

    def _log_eval(self, record: dict) -> None:
        self.events.log.info(
            "eval %d: test loss %.4f, perplexity %.3f on %d blocks",
            record["epoch"],
            record["test_loss"] or 0,
            record[PERPLEXITY] or 0,
            record["test_samples"],
        )

    def _finish(self, total: float, last_eval: dict) -> dict:
        result = super()._finish(total, last_eval)
        result.update(test_loss=last_eval.get("test_loss"), **{PERPLEXITY: last_eval.get(PERPLEXITY)})
        self.events.write_result(result)  # again, now with the perplexity
        return result
