"""A bare DDP loop: the same model, batch and optimizer as jobs/ddp.py, with nothing else. Its data path
is its own (random images generated once as float tensors on the training device, each rank's shard
reshuffled per epoch and sliced from that tensor), not hpcdl's: a peer that shared our loader would hide
exactly what the benchmarks should show.

Launched through torchrun by bench_ddp.py and bench_gpu.py, so it runs in the same kind of process as
the entrypoint it is compared with. On a GPU (when there is one) each rank uses cuda:LOCAL_RANK and NCCL,
else the CPU and gloo. --precision bf16|fp16 is autocast (fp16 with a GradScaler), as hpcdl's loop does.
Prints one JSON line with samples/s per timed epoch (epoch 1 is warm-up; global samples over the slowest
rank's epoch time, as hpcdl measures).
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


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def data(args, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(images, labels, image side): the synthetic set's shape as hpcdl sizes it for the model, made here."""
    channels = catalog.MODELS[args.model].channels
    size = args.image_size or max(catalog.DATASETS["synthetic"].size, catalog.MODELS[args.model].min_size)
    gen = torch.Generator(dev).manual_seed(0)
    images = torch.rand(args.train_samples, channels, size, size, generator=gen, device=dev)
    labels = torch.randint(0, 10, (args.train_samples,), generator=gen, device=dev)
    return images, labels, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--dataset", default="synthetic", choices=["synthetic"])
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--train-samples", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    dev = device()
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    images, labels, size = data(args, dev)
    net = models.build(args.model, 10, catalog.MODELS[args.model].channels, size).to(dev)
    model = DDP(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    scaler = torch.amp.GradScaler(dev.type, enabled=args.precision == "fp16")
    rates = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        n, t0 = 0, time.perf_counter()
        order = torch.randperm(args.train_samples, generator=torch.Generator().manual_seed(epoch))
        mine = order[rank::world].to(dev)
        for start in range(0, len(mine), args.batch_size):
            idx = mine[start : start + args.batch_size]
            x, y = images[idx], labels[idx]
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            n += len(y)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = torch.tensor([time.perf_counter() - t0, n], dtype=torch.float64, device=dev)
        dist.all_reduce(t[:1], op=dist.ReduceOp.MAX)
        dist.all_reduce(t[1:], op=dist.ReduceOp.SUM)
        if epoch > 1:
            rates.append(float(t[1] / t[0]))
    if rank == 0:
        print("BARE " + json.dumps({"throughput": rates}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
