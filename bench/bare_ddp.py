"""A bare DDP loop: the same model, data, batch and optimizer as jobs/ddp.py, with nothing else.

Launched by bench_ddp.py through torchrun; prints one JSON line with samples/s per timed epoch
(global samples over the slowest rank's epoch time, as hpcdl measures).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from hpc_dl.train import data, models


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--train-samples", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    ds = data.load(args.model, args.dataset, None, None, args.train_samples, 64, 0)
    model = DDP(models.build(args.model, ds.num_classes))
    loader, sampler = data.train_loader(ds, args.batch_size, rank, world, 0, False)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    rates = []
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)
        model.train()
        n, t0 = 0, time.perf_counter()
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
            n += len(y)
        t = torch.tensor([time.perf_counter() - t0, n], dtype=torch.float64)
        dist.all_reduce(t[:1], op=dist.ReduceOp.MAX)
        dist.all_reduce(t[1:], op=dist.ReduceOp.SUM)
        if epoch > 1:
            rates.append(float(t[1] / t[0]))
    if rank == 0:
        print("BARE " + json.dumps({"throughput": rates}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
