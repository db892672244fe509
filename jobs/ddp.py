"""DistributedDataParallel worker, launched by torchrun (one process per GPU, or per CPU worker)."""

from __future__ import annotations

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from hpc_dl.train import data, models
from hpc_dl.train.config import config_from, parser
from hpc_dl.train.env import DistEnv
from hpc_dl.train.loop import Trainer, run_main


def main(argv: list[str] | None = None) -> int:
    cfg = config_from(parser("ddp").parse_args(argv))
    env = DistEnv.from_environ()
    env.init_process_group()

    def body(events):
        torch.manual_seed(cfg.seed)
        ds = data.load(
            cfg.model, cfg.dataset, cfg.data_root, cfg.image_size, cfg.train_samples, cfg.test_samples, cfg.seed
        )
        model = models.build(cfg.model, ds.num_classes).to(env.device)
        ddp = DDP(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        pin = env.device.type == "cuda"
        train, sampler = data.train_loader(ds, cfg.batch_size, env.rank, env.world_size, cfg.seed, pin)
        test = data.test_loader(ds, cfg.batch_size, env.rank, env.world_size, pin)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=cfg.lr, momentum=0.9)
        Trainer(cfg, env, events, "ddp", ddp, optimizer, train, sampler, test).train()

    return run_main("ddp", cfg, env, body)


if __name__ == "__main__":
    raise SystemExit(main())
