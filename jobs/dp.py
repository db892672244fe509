"""nn.DataParallel: one process that splits each batch over the node's GPUs (seeds 000, 003).

On a node without GPUs DataParallel has nothing to split over: it runs on one CPU device, and the
run says so (world_size 1, a note in run_start that the report shows).
"""

from __future__ import annotations

import torch
from torch import nn

from hpc_dl.train import data, models
from hpc_dl.train.config import config_from, parser
from hpc_dl.train.env import DistEnv
from hpc_dl.train.loop import Trainer, run_main
from hpc_dl.train.setup import sgd


def main(argv: list[str] | None = None) -> int:
    cfg = config_from(parser("dp").parse_args(argv))
    env = DistEnv.from_environ()
    env.init_process_group()

    def body(events):
        torch.manual_seed(cfg.seed)
        requested = cfg.workers or 1
        devices = min(requested, torch.cuda.device_count())
        ds = data.load(
            cfg.model, cfg.dataset, cfg.data_root, cfg.image_size, cfg.train_samples, cfg.test_samples, cfg.seed
        )
        model = models.build(cfg.model, ds.num_classes).to(env.device)
        model = nn.DataParallel(model, device_ids=list(range(devices)) if devices else None)
        used = max(devices, 1)
        note = None if devices else "dp on a node without GPUs runs on one CPU device, whatever --gpus says"
        # the batch size is per device: DataParallel splits batch_size x devices
        train, sampler = data.train_loader(ds, cfg.batch_size * used, 0, 1, cfg.seed, devices > 0)
        test = data.test_loader(ds, cfg.batch_size * used, 0, 1, devices > 0)
        optimizer = sgd(model.parameters(), cfg)
        info = {"world_size": used, "global_batch_size": cfg.batch_size * used, "dp_devices": used, "note": note}
        Trainer(cfg, env, events, "dp", model, optimizer, train, sampler, test, info=info).train()

    return run_main("dp", cfg, env, body)


if __name__ == "__main__":
    raise SystemExit(main())
