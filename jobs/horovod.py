"""Horovod (seed 001), launched by horovodrun: allreduce of gradients, optionally fp16-compressed.

hvd.DistributedOptimizer averages the gradients (--compression none|fp16); parameters and optimizer
state are broadcast from rank 0 at the start; --backward-passes K accumulates K batches per allreduce.
Metrics are combined with Horovod's own allreduce.
"""

from __future__ import annotations

import os

import horovod.torch as hvd
import torch

from hpc_dl.train.config import config_from, parser
from hpc_dl.train.env import DistEnv
from hpc_dl.train.loop import Trainer, run_main
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

    def close(self) -> None:
        hvd.shutdown()

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
        return float(loss.detach()), int((out.argmax(1) == y).sum()), len(y)


def main(argv: list[str] | None = None) -> int:
    cfg = config_from(parser("horovod").parse_args(argv))
    env = HorovodEnv.from_horovod()
    env.init_process_group()

    def body(events):
        s = setup(cfg, env)
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
        HorovodTrainer(cfg, env, events, "horovod", s.model, optimizer, s.train, s.sampler, s.test, info=info).train()

    return run_main("horovod", cfg, env, body)


if __name__ == "__main__":
    raise SystemExit(main())
