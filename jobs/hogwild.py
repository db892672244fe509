"""Hogwild (seeds 002, 004): worker processes on one node update one shared-memory model without locks.

Each worker trains on its shard with its own optimizer over the shared parameters; nothing
synchronises the updates. A gloo group among the workers only combines the metrics.
"""

from __future__ import annotations

import dataclasses
import os
import socket

import torch
import torch.multiprocessing as mp

from hpc_dl.train.config import TrainConfig
from hpc_dl.train.entry import Job, job_config, run_in
from hpc_dl.train.env import DistEnv
from hpc_dl.train.setup import setup, task_of


def worker(rank: int, world: int, cfg: TrainConfig, model: torch.nn.Module, port: int) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )

    def body(job: Job) -> None:
        s = setup(cfg, job.env, model=model)  # the shared-memory model, this worker's shard
        job.train(s, info={"shared_memory_model": True})

    run_in("hogwild", cfg, DistEnv.from_environ(), body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    cfg = job_config("hogwild", argv)
    world = cfg.workers or 1
    torch.manual_seed(cfg.seed)
    task = task_of(cfg)
    ds = task.load_data(dataclasses.replace(cfg, train_samples=1, test_samples=1))  # for the class count
    model = task.build_model(cfg, ds)
    model.share_memory()
    mp.spawn(worker, args=(world, cfg, model, free_port()), nprocs=world, join=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
