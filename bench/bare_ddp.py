"""A bare DDP loop: the same model, batch and optimizer as jobs/ddp.py, with nothing else. Its data path
is its own (random images generated once as float tensors, each rank's shard reshuffled per epoch), not
hpcdl's: a peer that shared our loader would hide exactly what the benchmark should show.

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

from hpc_dl import catalog
from hpc_dl.train import models


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--dataset", default="synthetic", choices=["synthetic"])
    ap.add_argument("--train-samples", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    channels = catalog.MODELS[args.model].channels  # the synthetic set's shape, as hpcdl sizes it for the model
    size = max(catalog.DATASETS["synthetic"].size, catalog.MODELS[args.model].min_size)
    images = torch.rand(args.train_samples, channels, size, size, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 10, (args.train_samples,), generator=torch.Generator().manual_seed(1))
    model = DDP(models.build(args.model, 10, channels, size))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    rates = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        n, t0 = 0, time.perf_counter()
        mine = torch.randperm(args.train_samples, generator=torch.Generator().manual_seed(epoch))[rank::world]
        for start in range(0, len(mine), args.batch_size):
            idx = mine[start : start + args.batch_size]
            x, y = images[idx], labels[idx]
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
