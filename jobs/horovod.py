"""Horovod (seed 001), launched by horovodrun: allreduce of gradients, optionally fp16-compressed.

hvd.DistributedOptimizer averages the gradients (--compression none|fp16); parameters and optimizer
state are broadcast from rank 0 at the start; --backward-passes K accumulates K batches per allreduce.
Metrics are combined with Horovod's own allreduce.
"""

from __future__ import annotations

import os
import sys

import horovod.torch as hvd
import torch

from hpc_dl.train.entry import Job, run_job
from hpc_dl.train.env import DistEnv
from hpc_dl.train.loop import Trainer
from hpc_dl.train.setup import setup, sgd


class HorovodEnv(DistEnv):
    @classmethod
    def from_horovod(cls) -> HorovodEnv:
        hvd.init()
        if torch.cuda.is_available():
            device = torch.device("cuda", hvd.local_rank() % torch.cuda.device_count())
        else:
            device = torch.device("cpu")
        backend = "horovod-gloo" if hvd.gloo_enabled() else "horovod-mpi"
        return cls(hvd.rank(), hvd.size(), hvd.local_rank(), hvd.local_size(), device, backend)

    def init_process_group(self) -> None:
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

    def close(self, ok: bool = True) -> None:
        hvd.shutdown()
        mpi = sys.modules.get("mpi4py.MPI")  # MPI that mpi4py started must end before finish() os._exits
        if ok and mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
            mpi.Finalize()

    def all_reduce(self, values, op="sum"):
        t = torch.tensor(values, dtype=torch.float64)
        return hvd.allreduce(t, op=hvd.Sum if op == "sum" else hvd.Max, name=f"metrics.{op}.{len(values)}").tolist()


class HorovodTrainer(Trainer):
    """Gradient accumulation over --backward-passes batches: one allreduce and one step per K batches."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.passes = self.cfg.backward_passes or 1
        self.count = 0

    def _run_batch(self, x, y):
        if self.passes == 1:
            return super()._run_batch(x, y)
        with self.autocast():
            out = self.model(x)
            loss = self.loss_fn(out, y)
        (loss / len(y) / self.passes).backward()
        self.count += 1
        if self.count % self.passes == 0:
            self.optimizer.step()
            self.optimizer.zero_grad()
        return loss.detach(), self.correct(out, y), len(y)


def body(job: Job) -> None:
    cfg = job.cfg
    s = setup(cfg, job.env)
    compression = hvd.Compression.fp16 if cfg.compression == "fp16" else hvd.Compression.none
    optimizer = hvd.DistributedOptimizer(
        sgd(s.model.parameters(), cfg),
        named_parameters=s.model.named_parameters(),
        compression=compression,
        backward_passes_per_step=cfg.backward_passes or 1,
    )
    hvd.broadcast_parameters(s.model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(optimizer, root_rank=0)
    info = {"compression": cfg.compression or "none", "backward_passes": cfg.backward_passes or 1}
    job.train(s, optimizer=optimizer, trainer=HorovodTrainer, info=info)


def main(argv: list[str] | None = None) -> int:
    return run_job("horovod", argv, body, environ=HorovodEnv.from_horovod)


if __name__ == "__main__":
    raise SystemExit(main())
