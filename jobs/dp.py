"""nn.DataParallel: one process that splits each batch over the node's GPUs (seeds 000, 003).

On a node without GPUs DataParallel has nothing to split over: it runs on one CPU device, and the
run says so (world_size 1, a note in run_start that the report shows).
"""

from __future__ import annotations

import torch

from hpc_dl.train.entry import Job, run_job
from hpc_dl.train.setup import setup


def body(job: Job) -> None:
    cfg = job.cfg
    devices = min(cfg.workers or 1, torch.cuda.device_count())
    used = max(devices, 1)
    # the batch size is per device: DataParallel splits batch_size x devices, in one process (one shard)
    s = setup(cfg, job.env, batch_size=cfg.batch_size * used, shard=(0, 1))
    s.model = s.task.data_parallel(s.model, list(range(devices)) if devices else None)
    note = None if devices else "dp on a node without GPUs runs on one CPU device, whatever --gpus says"
    info = {"world_size": used, "global_batch_size": cfg.batch_size * used, "dp_devices": used, "note": note}
    job.train(s, info=info)


def main(argv: list[str] | None = None) -> int:
    return run_job("dp", argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
