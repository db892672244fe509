"""hpcdl's DDP entrypoint against a bare DDP loop whose data is already a tensor on the device (issue #10).

    .venv/bin/python bench/bench_gpu.py [--cases resnet18:64:fp32,resnet18:64:bf16,mnist-cnn:28:fp32,...]
        [--samples 4096] [--batch 64] [--epochs 3] [--repeats 5]

For each case (model:image size:precision): samples/s of `python -m hpc_dl.jobs.ddp` with 1 worker
(synthetic data through hpcdl's own loader), and of bench/bare_ddp.py with the same model, batch,
optimizer and precision (bf16/fp16: autocast) over images it generates once on the device: no loader, no
host copies, nothing of hpcdl's data code. Both run as a torchrun worker, so they run in the same kind of
process. They alternate in pairs (the order flips each repeat, so drift in the machine hits both alike);
the table gives the median of each and the median of the pairs' ratios, entrypoint / bare: what hpcdl's
input pipeline and the loop's bookkeeping cost. Epoch 1 is warm-up and not timed in either. On a GPU
where there is one (cuda:0), else on the CPU (one thread each, as a CPU worker runs). Prints Markdown
for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench/ is a package of the repo

from bench.bench_ddp import HERE, bare_rate, entrypoint_rate  # noqa: E402
from hpc_dl.runs import RunDir  # noqa: E402

DEFAULT_CASES = "resnet18:64:fp32,resnet18:64:bf16,mnist-cnn:28:fp32,mnist-cnn:28:bf16"


def case_args(case: tuple[str, int, str], args) -> list[str]:
    """The options both loops take (bare_ddp.py accepts the entrypoint's names for these)."""
    model, size, precision = case
    sizes = [f"--train-samples={args.samples}", f"--batch-size={args.batch}", f"--epochs={args.epochs}"]
    return [f"--model={model}", f"--image-size={size}", f"--precision={precision}", *sizes]


def pair(case, args, env: dict, run: RunDir, bare_first: bool) -> tuple[float, float]:
    """(bare, entrypoint) samples/s, run one after the other in the given order."""
    common = case_args(case, args)
    entry_args = [*common, "--dataset=synthetic", f"--test-samples={args.batch}"]
    if bare_first:
        bare = bare_rate(1, common, env)
        return bare, entrypoint_rate(1, entry_args, env, run)
    entry = entrypoint_rate(1, entry_args, env, run)
    return bare_rate(1, common, env), entry


def parse_cases(text: str) -> list[tuple[str, int, str]]:
    cases = []
    for item in text.split(","):
        model, size, precision = item.split(":")
        cases.append((model, int(size), precision))
    return cases


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({os.cpu_count()} cores, 1 thread a worker)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=DEFAULT_CASES, help="model:image size:precision, comma-separated")
    ap.add_argument("--samples", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hpcdl-bench-gpu-"))
    env = dict(os.environ, OMP_NUM_THREADS="1", HPCDL_RUNS=str(tmp / "runs"), PYTHONPATH=str(HERE.parent))
    print(
        f"# hpcdl DDP entrypoint vs a bare on-device DDP loop, both under torchrun: {device_name()}, "
        f"{platform.node()}; synthetic {args.samples} images, batch {args.batch}, {args.epochs} epochs "
        f"(epoch 1 untimed), {args.repeats} alternating pairs\n"
    )
    print("| model | px | precision | bare samples/s | entrypoint samples/s | ratio entry/bare (median) | pairs |")
    print("|---|---|---|---|---|---|---|")
    for case in parse_cases(args.cases):
        runs = [
            pair(case, args, env, RunDir(tmp / f"{'-'.join(map(str, case))}-{i}"), i % 2 == 0)
            for i in range(args.repeats)
        ]
        bare, entry = zip(*runs, strict=True)
        ratios = ", ".join(f"{e / b:.3f}" for b, e in runs)
        median = statistics.median(e / b for b, e in runs)
        row = f"| {case[0]} | {case[1]} | {case[2]} | {statistics.median(bare):.1f} | {statistics.median(entry):.1f} |"
        print(f"{row} {median:.3f} | {ratios} |", flush=True)


if __name__ == "__main__":
    main()
