"""Parallel SGD with MPI parameter averaging (seed 002), launched by mpirun, through mpi4py.

Every rank starts from the same weights and trains on its shard. --average once (the seed's algorithm):
the ranks train independently and their parameters are averaged at the end; each epoch's eval is of
the average the ranks would have then. --average every:K (local SGD): parameters are averaged every K
steps and at each epoch's end. Metrics are combined with MPI all-reduces.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
from mpi4py import MPI

from hpc_dl.spec import average_every
from hpc_dl.train.entry import Job, run_job
from hpc_dl.train.env import DistEnv
from hpc_dl.train.loop import Trainer
from hpc_dl.train.setup import setup


class MPIEnv(DistEnv):
    comm = MPI.COMM_WORLD

    @classmethod
    def from_mpi(cls) -> MPIEnv:
        rank, world = cls.comm.Get_rank(), cls.comm.Get_size()
        local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", rank))
        local_world = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", world))
        device = (
            torch.device("cuda", local % torch.cuda.device_count())
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
        return cls(rank, world, local, local_world, device, "mpi")

    def init_process_group(self) -> None:
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))

    def close(self, ok: bool = True) -> None:
        if ok:  # finish() os._exits: MPI must be finalized first, or mpirun fails a rank that exits 0
            self.comm.Barrier()
            MPI.Finalize()

    def all_reduce(self, values, op="sum"):
        out = np.empty(len(values), dtype=np.float64)
        self.comm.Allreduce(np.asarray(values, dtype=np.float64), out, op=MPI.SUM if op == "sum" else MPI.MAX)
        return out.tolist()

    def average(self, module: torch.nn.Module) -> None:
        """Every floating parameter and buffer := its mean over the ranks."""
        for t in list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]:
            buf = t.data.detach().cpu().numpy().astype(np.float64)
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            t.data.copy_(torch.from_numpy(buf / self.world_size).to(t.dtype))


class PSGDTrainer(Trainer):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.every = average_every(self.cfg.average or "once")
        self.steps = 0

    def _run_batch(self, x, y):
        result = super()._run_batch(x, y)
        self.steps += 1
        if self.every and self.steps % self.every == 0:
            self.env.average(self.model)
        return result

    def evaluate(self, epoch: int) -> dict:
        if self.every or epoch == self.cfg.epochs:
            self.env.average(self.model)  # local SGD averages at each epoch end; "once" at the very end
            return super().evaluate(epoch)
        own = self.model
        self.model = copy.deepcopy(own)  # "once": evaluate what the average would be now, keep training apart
        self.env.average(self.model)
        try:
            return super().evaluate(epoch)
        finally:
            self.model = own

    def gather_state(self):
        states = self.env.comm.gather(self.own_state())
        return {"ranks": states} if self.env.is_main else None

    def restore_state(self, state):
        super().restore_state(state["ranks"][self.env.rank])


def body(job: Job) -> None:
    s = setup(job.cfg, job.env)  # the same starting weights on every rank
    job.train(s, trainer=PSGDTrainer, info={"average": job.cfg.average or "once"})


def main(argv: list[str] | None = None) -> int:
    return run_job("psgd", argv, body, environ=MPIEnv.from_mpi)


if __name__ == "__main__":
    raise SystemExit(main())
