"""hpcdl's DDP entrypoint against a bare loop whose data is already a tensor on the device (issue #10).

    .venv/bin/python bench/bench_gpu.py [--cases resnet18:64:fp32,resnet18:64:bf16,mnist-cnn:28:fp32,...]
        [--samples 4096] [--batch 64] [--epochs 3] [--repeats 1]

For each case (model:image size:precision): samples/s of `python -m hpc_dl.jobs.ddp` with 1 worker under
torchrun (synthetic data, its own loader), and of a bare DDP loop (a one-rank group) in this process with
the same model, batch, optimizer and precision (bf16: autocast) over images generated once on the device:
no loader, no host copies, nothing of hpcdl's data code. Epoch 1 is warm-up and not timed in either. The
ratio entrypoint / bare is what the input pipeline and the loop's bookkeeping cost. Runs on a GPU where
there is one (cuda:0), on the CPU otherwise (one thread each, as a CPU worker runs). Prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from hpc_dl.events import read_rank
from hpc_dl.runs import RunDir
from hpc_dl.train import models

HERE = Path(__file__).resolve().parent
DEFAULT_CASES = "resnet18:64:fp32,resnet18:64:bf16,mnist-cnn:28:fp32,mnist-cnn:28:bf16"
CHANNELS = {"resnet18": 3, "mnist-cnn": 1}


def entrypoint_rate(case: tuple[str, int, str], args, env: dict, tmp: Path, i: int) -> float:
    model, size, precision = case
    run = RunDir(tmp / f"entry-{model}-{size}-{precision}-{i}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1"]
    cmd += ["-m", "hpc_dl.jobs.ddp", "--run-dir", str(run.path), "--model", model, "--dataset", "synthetic"]
    cmd += ["--image-size", str(size), "--train-samples", str(args.samples), "--test-samples", str(args.batch)]
    cmd += ["--batch-size", str(args.batch), "--epochs", str(args.epochs), "--precision", precision]
    subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    events, _ = read_rank(run.rank_events(0))
    return statistics.mean(e["throughput(samples/s)"] for e in events if e["event"] == "epoch_stop" and e["epoch"] > 1)


def _group(device: torch.device) -> None:
    """A one-rank process group in this process, so the bare loop is DDP as the entrypoint's is."""
    import torch.distributed as dist

    if not dist.is_initialized():
        store = dist.HashStore()
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=0, world_size=1)


def bare_rate(case: tuple[str, int, str], args, device: torch.device) -> float:
    """The same DDP training on images already on the device, in batches sliced from one tensor."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    model_name, size, precision = case
    torch.manual_seed(0)
    _group(device)
    model = models.build(model_name, 10).to(device).train()
    model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    images = torch.rand(args.samples, CHANNELS[model_name], size, size, device=device)
    labels = torch.randint(0, 10, (args.samples,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    dtype = torch.bfloat16 if precision == "bf16" else None
    rates = []
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(args.samples, device=device)
        t0 = time.perf_counter()
        for start in range(0, args.samples, args.batch):
            idx = order[start : start + args.batch]
            opt.zero_grad()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model(images[idx]), labels[idx])
            (loss / len(idx)).backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if epoch > 1:
            rates.append(args.samples / (time.perf_counter() - t0))
    return statistics.mean(rates)


def parse_cases(text: str) -> list[tuple[str, int, str]]:
    cases = []
    for item in text.split(","):
        model, size, precision = item.split(":")
        cases.append((model, int(size), precision))
    return cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=DEFAULT_CASES, help="model:image size:precision, comma-separated")
    ap.add_argument("--samples", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores, 1 thread)"
    tmp = Path(tempfile.mkdtemp(prefix="hpcdl-bench-gpu-"))
    env = dict(os.environ, OMP_NUM_THREADS="1", HPCDL_RUNS=str(tmp / "runs"), PYTHONPATH=str(HERE.parent))
    print(
        f"# hpcdl DDP entrypoint vs a bare on-device loop: {name}, {platform.node()}; synthetic {args.samples} "
        f"images, batch {args.batch}, {args.epochs} epochs (epoch 1 untimed), {args.repeats} repeat(s)\n"
    )
    print("| model | px | precision | bare samples/s | entrypoint samples/s | ratio entry/bare |")
    print("|---|---|---|---|---|---|")
    for case in parse_cases(args.cases):
        bare, entry = [], []
        for i in range(args.repeats):  # interleaved, so drift in the machine hits both alike
            bare.append(bare_rate(case, args, device))
            entry.append(entrypoint_rate(case, args, env, tmp, i))
        mb, me = statistics.median(bare), statistics.median(entry)
        print(f"| {case[0]} | {case[1]} | {case[2]} | {mb:.1f} | {me:.1f} | {me / mb:.3f} |", flush=True)


if __name__ == "__main__":
    main()
