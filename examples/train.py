"""Your own training script under hpcdl: `hpcdl submit --script examples/train.py --gpus 2 -- 3`."""

import os
import sys
import time

import torch
import torch.distributed as dist
from torch import nn

from hpc_dl import report

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
if "RANK" in os.environ:  # started by torchrun (ddp, fsdp, pipeline)
    dist.init_process_group("gloo")
rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
torch.manual_seed(0)
x, y = torch.randn(8192, 64), torch.randint(0, 4, (8192,))
model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 4))
model = nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
opt = torch.optim.SGD(model.parameters(), lr=0.05)
report.start(model="mlp", dataset="random", batch_size=64)
for _ in range(epochs):
    t0, seen, correct = time.perf_counter(), 0, 0
    for i in range(rank * 64, len(x), 64 * world):  # this rank's share of the batches
        out = model(x[i : i + 64])
        loss = nn.functional.cross_entropy(out, y[i : i + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen, correct = seen + len(out), correct + int((out.argmax(1) == y[i : i + 64]).sum())
    report.epoch(samples=seen, seconds=time.perf_counter() - t0, loss=loss.item(), accuracy=correct / seen)
