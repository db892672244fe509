"""The distributed environment, read from the environment alone (RANK, WORLD_SIZE, LOCAL_RANK).

Teardown: a worker that finished leaves the process group with close() (a barrier, then
destroy_process_group) and ends with finish(0), which flushes and os._exit()s, so that no C++ destructor
of the communication stack (gloo/NCCL threads, the TCPStore server) races the interpreter's exit. That
race aborted finished workers ("terminate called without an active exception", SIGABRT).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

# Before any process group exists: torch.distributed.nn.functional's defaults are `group=group.WORLD`,
# evaluated at import. Imported later (torchvision and DDP import it lazily), they pinned the default
# group, so destroy_process_group never freed it and its gloo threads lived on into interpreter exit.
import torch.distributed.nn  # noqa: F401


@dataclass
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def hostname(self) -> str:
        return socket.gethostname()

    @classmethod
    def from_environ(cls) -> DistEnv:
        rank = int(os.environ.get("RANK", 0))
        world = int(os.environ.get("WORLD_SIZE", 1))
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        if torch.cuda.is_available():
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
            backend = "nccl"
        else:
            device = torch.device("cpu")
            backend = "gloo"
        return cls(rank, world, local_rank, local_world, device, backend)

    def init_process_group(self) -> None:
        """Join the process group (torchrun's env:// rendezvous); threads per worker from OMP_NUM_THREADS."""
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if "RANK" not in os.environ:  # one process on its own (dp, kfold): no process group
            return
        if not dist.is_initialized():
            kwargs = {"device_id": self.device} if self.device.type == "cuda" else {}
            dist.init_process_group(backend=self.backend, **kwargs)

    def close(self, ok: bool = True) -> None:
        """Leave the process group. After a success every rank first waits for the others (no rank tears
        down its connections while a peer still uses them); after a failure it leaves at once."""
        if not dist.is_initialized():
            return
        if ok and self.world_size > 1:
            dist.barrier(**({"device_ids": [self.device.index]} if self.backend == "nccl" else {}))
        dist.destroy_process_group()

    def finish(self, code: int = 0) -> None:
        """End a job's worker process now, with `code`, once close() has run: flush stdout, stderr and
        the log files, then os._exit, skipping the interpreter's teardown and the C++ destructors that
        raced it. Does nothing unless __main__ is a job (hpc_dl.jobs.*): in-process callers keep running."""
        main = getattr(sys.modules.get("__main__"), "__spec__", None)
        if main is None or not main.name.startswith("hpc_dl.jobs."):
            return
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed or gone: nothing left to flush
                pass
        os._exit(code)

    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} thread(s); no GPU: this worker is a CPU process)"

    # -- collectives over [sum, count]-style metrics; never rank-0 x N
    def all_reduce(self, values: list[float], op: str = "sum") -> list[float]:
        if not dist.is_initialized() or self.world_size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.backend == "nccl" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return t.tolist()
