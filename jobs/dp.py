"""nn.DataParallel: one process that splits each batch over the node's GPUs (seeds 000, 003).

On a node without GPUs DataParallel has nothing to split over: it runs on one CPU device, and the
run says so (world_size 1, a note in run_start that the report shows).
"""

from __future__ import annotations

import torch
from torch import nn

from hpc_dl.train import detection, loaders, models
from hpc_dl.train.detection_train import DetectionDataParallel
from hpc_dl.train.entry import Job, run_job
from hpc_dl.train.setup import Setup, load_data


def body(job: Job) -> None:
    cfg = job.cfg
    torch.manual_seed(cfg.seed)
    devices = min(cfg.workers or 1, torch.cuda.device_count())
    used = max(devices, 1)
    ids = list(range(devices)) if devices else None
    if detection.is_detection(cfg.model):  # lists of images and targets, sliced per GPU
        s = detection.setup(cfg, job.env, batch_size=cfg.batch_size * used, rank=0, world_size=1)
        s.model = DetectionDataParallel(s.model, device_ids=ids)
    else:
        s = _setup(cfg, job, devices, ids)
    note = None if devices else "dp on a node without GPUs runs on one CPU device, whatever --gpus says"
    info = {"world_size": used, "global_batch_size": cfg.batch_size * used, "dp_devices": used, "note": note}
    job.train(s, info=info)


def _setup(cfg, job: Job, devices: int, ids: list[int] | None) -> Setup:
    ds = load_data(cfg)
    model = models.build(cfg.model, ds.num_classes, ds.channels, ds.image_size).to(job.env.device)
    model = nn.DataParallel(model, device_ids=ids)
    used = max(devices, 1)
    # the batch size is per device: DataParallel splits batch_size x devices
    dev, workers, size = job.env.device, cfg.loader_workers, cfg.batch_size * used
    train, sampler = loaders.train_loader(ds, size, 0, 1, cfg.seed, dev, workers=workers)
    test = loaders.test_loader(ds, size, 0, 1, dev, workers=workers)
    return Setup(ds, model, train, sampler, test)


def main(argv: list[str] | None = None) -> int:
    return run_job("dp", argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
