"""The distributed environment, read from the environment alone (RANK, WORLD_SIZE, LOCAL_RANK)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


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

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

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
