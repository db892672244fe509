"""Hogwild (seeds 002, 004): worker processes on one node update one shared-memory model without locks.

Each worker trains on its shard with its own optimizer over the shared parameters; nothing
synchronises the updates. A gloo group among the workers only combines the metrics.
"""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

from hpc_dl.train import data, models
from hpc_dl.train.config import TrainConfig, config_from, parser
from hpc_dl.train.env import DistEnv
from hpc_dl.train.loop import Trainer, run_main


def worker(rank: int, world: int, cfg: TrainConfig, model: torch.nn.Module, port: int) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    env = DistEnv.from_environ()
    env.init_process_group()

    def body(events):
        ds = data.load(
            cfg.model, cfg.dataset, cfg.data_root, cfg.image_size, cfg.train_samples, cfg.test_samples, cfg.seed
        )
        train, sampler = data.train_loader(ds, cfg.batch_size, rank, world, cfg.seed, False)
        test = data.test_loader(ds, cfg.batch_size, rank, world, False)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
        Trainer(
            cfg, env, events, "hogwild", model, optimizer, train, sampler, test, info={"shared_memory_model": True}
        ).train()

    run_main("hogwild", cfg, env, body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    cfg = config_from(parser("hogwild").parse_args(argv))
    world = cfg.workers or 1
    torch.manual_seed(cfg.seed)
    ds = data.load(cfg.model, cfg.dataset, cfg.data_root, cfg.image_size, 1, 1, cfg.seed)  # for the class count
    model = models.build(cfg.model, ds.num_classes)
    model.share_memory()
    mp.spawn(worker, args=(world, cfg, model, free_port()), nprocs=world, join=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
