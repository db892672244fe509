"""TensorBoard scalars per epoch, written by rank 0 into the run's tensorboard/ folder while the run trains.

    tracker = Tracker.open(run, start_epoch, is_main)       # a RunDir or its folder; start_epoch: last
                                                             # completed epoch (0: fresh)
    tracker.epoch(stats, eval_record, lr)                    # after each epoch: _run_epoch and evaluate dicts
    tracker.close()

The step is the epoch. A requeued job opens its writer with purge_step = its first epoch, so whatever an
earlier attempt wrote from that epoch on is dropped by TensorBoard and no step is counted twice. Ranks
other than 0, and machines without the tensorboard package, get a tracker that does nothing.
`hpcdl tensorboard RUNS` prints (or starts) the TensorBoard command for these folders.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .. import catalog
from ..runs import RunDir

log = logging.getLogger(__name__)

# tag -> key in the epoch_stop record (Trainer._run_epoch); phases are None where not timed (own-step
# strategies); every task's own per-epoch stats (catalog.TASKS), where a run's records have them
EPOCH_SCALARS = {
    "train/loss": "loss",
    "train/accuracy": "accuracy",
    "throughput(samples/s)": "throughput(samples/s)",
    **{m.tag: m.key for m in catalog.epoch_metrics()},
    "time/epoch(s)": "time(s)",
    "time/data(s)": "rank_data_time(s)",
    "time/forward(s)": "rank_forward_time(s)",
    "time/backward(s)": "rank_backward_time(s)",
    "time/optimizer(s)": "rank_optimizer_time(s)",
}
# tag -> key in the eval record (Trainer.evaluate): the loss and every task's metrics
EVAL_SCALARS = {"test/loss": "test_loss", **{m.tag: m.key for m in catalog.metrics()}}


class Tracker:
    """Writes nothing: other ranks, or no tensorboard package."""

    def epoch(self, stats: dict, eval_record: dict | None = None, lr: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    @staticmethod
    def open(run: RunDir | Path, start_epoch: int = 0, is_main: bool = True) -> Tracker:
        if not is_main:
            return Tracker()
        try:
            return TensorBoardTracker(run if isinstance(run, RunDir) else RunDir(Path(run)), start_epoch)
        except ImportError as exc:  # the package is optional for training
            log.warning("no TensorBoard logs for this run: %s", exc)
            return Tracker()


class TensorBoardTracker(Tracker):
    def __init__(self, run: RunDir, start_epoch: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run.tensorboard), purge_step=start_epoch + 1, flush_secs=30)

    def epoch(self, stats: dict, eval_record: dict | None = None, lr: float | None = None) -> None:
        step = int(stats["epoch"])
        values = {tag: stats.get(key) for tag, key in EPOCH_SCALARS.items()}
        values.update({tag: (eval_record or {}).get(key) for tag, key in EVAL_SCALARS.items()})
        values["lr"] = lr
        for tag, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # one epoch at a time: visible at once, and safe from a kill before the next

    def close(self) -> None:
        self.writer.close()
