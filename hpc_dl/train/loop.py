"""The one training loop every entrypoint shares: _run_batch, _run_epoch, evaluate, train.

A strategy hands in its wrapped model and optimizer; the loop times each epoch (data wait and the phases,
phases.py), sums loss and correct counts on the device, all-reduces them once per epoch and writes the
events. Throughput is the global sample count over the slowest rank's epoch time, never rank 0 x N.

Checkpoints and requeue: after every epoch rank 0 saves checkpoints/last.pt (atomically); every
HPCDL_STOP_CHECK_STEPS steps the ranks agree (one all-reduce) whether a stop was requested (RunDir.stop,
or SIGTERM) and, if so, save a step checkpoint (preempt.py) and stop with run_stop status "requeue". A
resumed run continues at that step and logs every epoch exactly once however often it is requeued.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
import traceback
from dataclasses import dataclass, field

import torch
from torch import nn

from ..events import read_rank
from . import preempt, sizes
from .config import TrainConfig
from .env import DistEnv
from .events import Events, rank_dir
from .gpu_sampler import start_for
from .loaders import describe
from .phases import PhaseClock
from .setup import make_scheduler
from .tracking import Tracker

CHECKPOINT_FORMAT = 1


@dataclass
class Trainer:
    cfg: TrainConfig
    env: DistEnv
    events: Events
    strategy: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    train_loader: torch.utils.data.DataLoader
    sampler: object
    test_loader: torch.utils.data.DataLoader
    info: dict = field(default_factory=dict)  # extra run_start fields from the strategy
    amp: bool = True  # False: the strategy handles precision itself (fsdp's mixed-precision policy)

    def __post_init__(self) -> None:
        dev = self.env.device.type
        self.lr_scheduler = make_scheduler(self.optimizer, self.cfg.scheduler, self.cfg.epochs)
        if self.cfg.precision == "fp32" or not self.amp:
            self.autocast = contextlib.nullcontext
        else:
            dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float16
            self.autocast = lambda: torch.autocast(device_type=dev, dtype=dtype)
        self.scaler = torch.amp.GradScaler(dev, enabled=self.amp and self.cfg.precision == "fp16")
        self.history: list[dict] = []
        self.phases: dict[str, float] = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        self.clock = PhaseClock(self.env.device)
        self.resume: dict | None = None  # a checkpoint's cut-short epoch (preempt), until it is resumed
        self.partial: dict | None = None  # where this attempt stopped mid-epoch, for its checkpoint

    # -- one step
    def loss_fn(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A batch's summed loss: cross-entropy over class logits (a task's trainer may define its own)."""
        return nn.functional.cross_entropy(out, y, reduction="sum")

    def correct(self, out: torch.Tensor, y: torch.Tensor):
        """How many of a batch's predictions are right: top-1 (a task's trainer may count its own way)."""
        return (out.argmax(1) == y).sum()

    def _run_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        """One step; returns (summed loss, correct predictions, samples this rank counts). Loss and correct
        stay on the device (tensors): the loop adds them up there and reads them once (`_read_sums`)."""
        marks = [self.clock.mark()]
        self.optimizer.zero_grad()
        with self.autocast():
            out = self.model(x)
            loss = self.loss_fn(out, y)
        marks.append(self.clock.mark())
        self.scaler.scale(loss / len(y)).backward()  # with DDP, FSDP or Horovod this includes their communication
        marks.append(self.clock.mark())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        marks.append(self.clock.mark())
        self.clock.step(self.phases, tuple(marks))
        return loss.detach(), self.correct(out, y), len(y)

    def _run_epoch(self, epoch: int, resume: dict | None = None) -> dict | None:
        """One epoch (or the rest of one cut short: `resume`); None when the ranks stopped mid-epoch on
        request, with the step's state in self.partial for the checkpoint."""
        self.model.train()
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        mine = preempt.for_rank(resume, self.env.rank) if resume else None
        acc = mine["acc"] if mine else preempt.new_accumulators()
        self.phases = acc["phases"]
        if mine:
            preempt.set_rng_state(mine["rng_epoch"])
        rng_epoch = preempt.rng_state()  # before the iterator: it draws the shuffling seed
        batches = iter(self.train_loader)
        done = resume["step"] if resume else 0
        for _ in range(done):  # trained before the stop: the same batches, not trained again
            next(batches)
        if mine:
            preempt.set_rng_state(mine["rng_now"])
        sums = torch.tensor([acc["loss"], acc["correct"]], dtype=torch.float64, device=self.env.device)
        start = time.perf_counter() - acc["elapsed"]
        fetch = time.perf_counter()
        for step, (x, y) in enumerate(batches, start=done + 1):
            x, y = x.to(self.env.device, non_blocking=True), y.to(self.env.device, non_blocking=True)
            acc["data"] += time.perf_counter() - fetch
            batch_loss, batch_correct, counted = self._run_batch(x, y)
            sums[0] += batch_loss
            sums[1] += batch_correct
            acc["samples"] += counted
            if step % preempt.CHECK_EVERY == 0 and preempt.stop_at_step(epoch, step, self.stop_requested):
                self._read_sums(acc, sums)
                acc["elapsed"] = time.perf_counter() - start
                mine = {"acc": acc, "rng_epoch": rng_epoch, "rng_now": preempt.rng_state()}
                self.partial = {"epoch": epoch, "step": step, "ranks": preempt.gather_ranks(self.env, mine)}
                return None
            fetch = time.perf_counter()
        self._read_sums(acc, sums)
        return self._epoch_stats(epoch, acc, time.perf_counter() - start)

    def _read_sums(self, acc: dict, sums: torch.Tensor) -> None:
        """The one wait on the device: its running sums and phase timers into this rank's accumulators."""
        if self.env.device.type == "cuda":
            torch.cuda.synchronize(self.env.device)
        self.clock.settle(self.phases)
        loss, correct = sums.tolist()
        acc["loss"], acc["correct"] = loss, int(round(correct))

    def _epoch_stats(self, epoch: int, acc: dict, rank_time: float) -> dict:
        g_loss, g_correct, g_samples = self.env.all_reduce([acc["loss"], acc["correct"], acc["samples"]])
        (g_time,) = self.env.all_reduce([rank_time], op="max")
        return {
            "epoch": epoch,
            "time(s)": g_time,
            "rank_time(s)": rank_time,
            "rank_data_time(s)": acc["data"],
            # host clock on CPU, CUDA events on a GPU (phases.py); strategies with their own step (pipeline,
            # horovod accumulation) do not fill them: then null
            **{
                f"rank_{name}_time(s)": (value if any(self.phases.values()) else None)
                for name, value in self.phases.items()
            },
            "samples": int(g_samples),
            "rank_samples": acc["samples"],
            "throughput(samples/s)": g_samples / g_time if g_time > 0 else None,
            "loss": g_loss / g_samples if g_samples else None,
            "accuracy": g_correct / g_samples if g_samples else None,
        }

    def _eval_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int, int]:
        """One test batch; returns (summed loss, correct predictions, images this rank counts). Strategies
        whose forward pass is not the model's own (pipeline stages) override this, not evaluate."""
        with self.autocast():
            out = self.model(x)
        return float(self.loss_fn(out.float(), y)), int(self.correct(out, y)), len(y)

    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict:
        self.model.eval()
        start = time.perf_counter()
        loss_sum, correct, count = 0.0, 0, 0
        for x, y in self.test_loader:
            batch_loss, batch_correct, counted = self._eval_batch(x.to(self.env.device), y.to(self.env.device))
            loss_sum += batch_loss
            correct += batch_correct
            count += counted
        g_loss, g_correct, g_count = self.env.all_reduce([loss_sum, correct, count])
        return {
            "epoch": epoch,
            "test_loss": g_loss / g_count if g_count else None,
            "test_accuracy": g_correct / g_count if g_count else None,
            "test_samples": int(g_count),
            "time(s)": time.perf_counter() - start,
        }

    # -- the run
    def start_record(self) -> dict:
        return {
            "strategy": self.strategy,
            "world_size": self.env.world_size,
            "local_world_size": self.env.local_world_size,
            "local_rank": self.env.local_rank,
            "hostname": self.env.hostname,
            "model": self.cfg.model,
            "dataset": self.cfg.dataset,
            "batch_size": self.cfg.batch_size,
            "global_batch_size": self.cfg.batch_size * self.env.world_size,
            "epochs": self.cfg.epochs,
            "lr": self.cfg.lr,
            "precision": self.cfg.precision,
            "train_samples": len(self.train_loader.dataset),
            "test_samples": len(self.test_loader.dataset) * self.env.world_size,
            "device": self.env.device.type,
            "device_name": self.env.device_name(),
            "backend": self.env.backend,
            "threads": torch.get_num_threads(),
            **describe(self.train_loader),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "launcher": os.environ.get("HPCDL_LAUNCHER"),
            "torch": torch.__version__,
            "python": platform.python_version(),
            **sizes.model_bytes(self.model),
            **self.info,
        }

    # -- checkpoints
    @property
    def checkpoint_path(self):
        return self.events.run.last_checkpoint

    def gather_state(self) -> dict | None:
        """Called on every rank; rank 0 returns what resuming needs. Strategies whose ranks hold different
        parts (fsdp shards, pipeline stages, psgd's own models) override it to gather them."""
        return self.own_state() if self.env.is_main else None

    def own_state(self) -> dict:
        """This rank's model (unwrapped) and optimizer state: what a rank-0 checkpoint holds, or one rank's part."""
        return {
            "model": getattr(self.model, "module", self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def restore_state(self, state: dict) -> None:
        """Called on every rank with what gather_state returned on rank 0 (with own_state's keys)."""
        getattr(self.model, "module", self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def save_checkpoint(self, epoch: int, evals: list[dict], partial: dict | None = None) -> None:
        """checkpoints/last.pt, atomically: after `epoch` (the last whole one), and with `partial`, the
        state of the epoch after it where the ranks stopped (step, running sums, random state)."""
        state = self.gather_state()  # on every rank: gathering may be a collective
        if not self.env.is_main:
            return
        path = self.checkpoint_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "epoch": epoch,
                "state": state,
                "scaler": self.scaler.state_dict(),
                "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
                "history": self.history,
                "evals": evals,
                "world_size": self.env.world_size,
                "partial": partial,
            },
            tmp,
        )
        os.replace(tmp, path)

    def load_checkpoint(self) -> tuple[int, list[dict]]:
        """Resume from checkpoints/last.pt if there is one: (last completed epoch, its eval records)."""
        if not self.checkpoint_path.exists():
            return 0, []
        state = torch.load(self.checkpoint_path, map_location=self.env.device, weights_only=False)
        self.restore_state(state["state"])
        self.scaler.load_state_dict(state["scaler"])
        if self.lr_scheduler and state.get("lr_scheduler"):
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.history = list(state["history"])
        self.resume = state.get("partial")
        return int(state["epoch"]), list(state["evals"])

    def _logged_epochs(self) -> set[int]:
        logged, _ = read_rank(self.events.run.rank_events(self.env.rank))
        return {ev.get("epoch") for ev in logged if ev["event"] == "epoch_stop"}

    def stop_requested(self) -> bool:
        """Whether any rank sees a stop request; all ranks get the same answer."""
        asked = preempt.preempted() or self.events.run.stop.exists()
        (flag,) = self.env.all_reduce([1.0 if asked else 0.0], op="max")
        return flag > 0

    # -- the run
    def train(self) -> dict:
        """Resume from the checkpoint if any (mid-epoch too), run the remaining epochs, stop when asked to."""
        preempt.install()
        start_epoch, evals = self.load_checkpoint()
        self._start(start_epoch, evals)
        self.tracker = Tracker.open(self.events.run, start_epoch, self.env.is_main)
        t0 = time.perf_counter()
        last_eval: dict = evals[-1] if evals else {}
        try:
            for epoch in range(start_epoch + 1, self.cfg.epochs + 1):
                resume, self.resume = (self.resume if self.resume and self.resume["epoch"] == epoch else None), None
                last_eval = self._train_epoch(epoch, evals, resume)
                if last_eval is None:
                    return self._stop_for_requeue(epoch, time.perf_counter() - t0, mid_epoch=True)
                if epoch < self.cfg.epochs and preempt.stop_at_epoch_end(epoch, self.stop_requested):
                    return self._stop_for_requeue(epoch, time.perf_counter() - t0)
            return self._finish(time.perf_counter() - t0, last_eval)
        finally:
            self.tracker.close()

    def _start(self, start_epoch: int, evals: list[dict]) -> None:
        """run_start, then the epochs the checkpoint holds that this rank's log lacks (cut off after saving)."""
        record = self.start_record()
        if start_epoch or self.resume:
            record.update(resumed_from_epoch=start_epoch, restart=int(os.environ.get("SLURM_RESTART_COUNT", "0")))
        if self.resume:
            record.update(resumed_at_step=self.resume["step"])
        self.events.emit("run_start", **record)
        where = (self.strategy, self.cfg.model, self.cfg.dataset, self.env.world_size, self.env.device_name())
        resuming = f"; resuming after epoch {start_epoch}" if start_epoch else ""
        self.events.log.info("start: %s %s on %s, %d worker(s), device %s%s", *where, resuming)
        logged = self._logged_epochs()
        for stats, ev_rec in zip(self.history, evals, strict=True):
            if stats["epoch"] not in logged:
                self.events.emit("epoch_stop", **stats, recovered=True)
                self.events.emit("eval", **ev_rec, recovered=True)

    def _train_epoch(self, epoch: int, evals: list[dict], resume: dict | None = None) -> dict | None:
        """One epoch and its evaluation, checkpointed before they are logged; returns the eval record, or
        None when the ranks stopped mid-epoch (after a step checkpoint)."""
        stats = self._run_epoch(epoch, resume)
        if stats is None:
            self.save_checkpoint(epoch - 1, evals, self.partial)
            return None
        lr = self.optimizer.param_groups[0]["lr"]
        if self.lr_scheduler:
            self.lr_scheduler.step()
        last_eval = self.evaluate(epoch)
        self.history.append(stats)
        evals.append(last_eval)
        self.save_checkpoint(epoch, evals)
        self.tracker.epoch(stats, last_eval, lr)
        self.events.emit("epoch_stop", **stats)
        self._log_epoch(stats)
        self.events.emit("eval", **last_eval)
        self._log_eval(last_eval)
        return last_eval

    def _log_epoch(self, s: dict) -> None:
        values = (s["time(s)"], s["throughput(samples/s)"] or 0, s["loss"] or 0, s["accuracy"] or 0)
        line = "epoch %d/%d: %.2f s, %.1f samples/s, loss %.4f, accuracy %.4f"
        self.events.log.info(line, s["epoch"], self.cfg.epochs, *values)

    def _log_eval(self, r: dict) -> None:
        line = "eval %d: test accuracy %.4f on %d images"
        self.events.log.info(line, r["epoch"], r["test_accuracy"] or 0, r["test_samples"])

    def _stop_for_requeue(self, epoch: int, elapsed: float, mid_epoch: bool = False) -> dict:
        where = f"at step {self.partial['step']} of epoch {epoch}" if mid_epoch else f"after epoch {epoch}"
        extra = {"step": self.partial["step"]} if mid_epoch else {}
        self.events.emit("run_stop", status="requeue", epoch=epoch, **extra, **{"time(s)": elapsed})
        reason = "SIGTERM (preempted)" if preempt.preempted() else preempt.stop_reason(self.events.run.stop)
        line = "stop requested (%s): checkpointed and stopped %s of %d; the job will be requeued"
        self.events.log.info(line, reason, where, self.cfg.epochs)
        return {"status": "requeue", "epoch": epoch, **extra}

    def _finish(self, total: float, last_eval: dict) -> dict:
        """run_stop and rank 0's result.json."""
        self.events.emit("run_stop", status="success", **{"time(s)": total})
        result = {
            "status": "success",
            "strategy": self.strategy,
            "world_size": self.env.world_size,
            "epochs": self.cfg.epochs,
            "time(s)": total,
            "test_accuracy": last_eval.get("test_accuracy"),
            "throughput(samples/s)": [h["throughput(samples/s)"] for h in self.history],
        }
        self.events.write_result(result)
        self.events.log.info("done in %.2f s", total)
        return result


def run_main(strategy: str, cfg: TrainConfig, env: DistEnv, body) -> int:
    """Run an entrypoint's body with events open, and record a failure as run_stop before re-raising."""
    events = Events(rank_dir(cfg.run_dir), env.rank, env.device, start_for(env.device, env.local_rank))
    try:
        body(events)
    except BaseException as exc:
        events.emit("run_stop", status="failed", error=f"{type(exc).__name__}: {exc}"[:500])
        events.log.error("failed: %s\n%s", exc, traceback.format_exc())
        events.close()
        env.close(ok=False)
        raise  # the interpreter prints the traceback and exits non-zero
    events.close()
    env.close()
    env.finish(0)  # a job's worker process ends here (os._exit after the teardown); in-process callers go on
    return 0
