"""DistributedDataParallel worker, launched by torchrun (one process per GPU, or per CPU worker)."""

from __future__ import annotations

from torch.nn.parallel import DistributedDataParallel as DDP

from hpc_dl.train.entry import Job, run_job
from hpc_dl.train.setup import setup


def body(job: Job) -> None:
    s = setup(job.cfg, job.env)
    cuda = job.env.device.type == "cuda"
    job.train(s, model=DDP(s.model, device_ids=[job.env.device.index] if cuda else None))


def main(argv: list[str] | None = None) -> int:
    return run_job("ddp", argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
