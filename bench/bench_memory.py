"""Peak memory per rank: ddp, fsdp and pipeline with 1 and 2 workers, measured through hpcdl itself.

    .venv/bin/python bench/bench_memory.py [MODEL ...]    (default: resnet50 gpt-small)

Each point is one real run of the job script (local profile; CPU workers, one thread each): one epoch of
a few samples (image models: synthetic 32x32, batch 4, a pipeline in 2 micro-batches; gpt-small:
synthetic-text, batch 1). A rank's peak is the largest `peak_memory(MiB)` it recorded: on CPU workers
the process's peak RSS, with MALLOC_MMAP_THRESHOLD_ fixed at 1 MiB so that freed blocks leave the
resident set (glibc's adaptive threshold keeps them, and fsdp's all-gathers free many);
`--default-allocator` measures without it.
A 1-worker pipeline is not a pipeline (it needs 2 stages) and is skipped. Prints Markdown for
BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hpc_dl import catalog, profiles
from hpc_dl import submit as sub
from hpc_dl.spec import JobSpec

STRATEGIES = ("ddp", "fsdp", "pipeline")


def spec_for(strategy: str, model: str, workers: int) -> JobSpec:
    language = catalog.MODELS[model].task == "language"
    data = {"dataset": "synthetic-text", "batch_size": 1} if language else {"dataset": "synthetic", "image_size": 32}
    extra = {"microbatches": 2} if strategy == "pipeline" else {}
    return JobSpec(
        strategy=strategy,
        model=model,
        gpus=workers,
        train_samples=4 * workers,
        test_samples=2 * workers,
        epochs=1,
        **{"batch_size": 4, **data},
        **extra,
    )


def measure(spec: JobSpec, root: Path, env: dict) -> tuple[list[float], float, float]:
    """(each rank's peak MiB, the parameter MiB of rank 0's model, wall seconds)."""
    run, _ = sub._prepare(spec, profiles.load("local"), root, "memory", None)
    t0 = time.perf_counter()
    done = subprocess.run(["bash", str(run.script)], capture_output=True, text=True, env=env, timeout=1800)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        tail = done.stdout[-3000:] + done.stderr[-3000:]
        raise SystemExit(f"{spec.strategy} {spec.model} x{spec.gpus} failed:\n{tail}")
    peaks, params = [], 0.0
    for path in run.event_files():
        events = [json.loads(x) for x in path.read_text().splitlines()]
        peaks.append(max(e["peak_memory(MiB)"] for e in events if "peak_memory(MiB)" in e))
        if path == run.rank_events(0):
            params = events[0]["parameter_bytes"] / 2**20
    return peaks, params, wall


def main(argv: list[str]) -> None:
    default = "--default-allocator" in argv
    models = [a for a in argv if not a.startswith("--")] or ["resnet50", "gpt-small"]
    env = dict(os.environ) if default else dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(2**20))
    root = Path(tempfile.mkdtemp(prefix="hpcdl-bench-memory-"))
    allocator = "glibc's default (adaptive) mmap threshold" if default else "MALLOC_MMAP_THRESHOLD_=1048576"
    print(f"# Peak memory per rank (peak RSS, MiB), CPU workers, one thread each; {allocator}; {os.cpu_count()} cores")
    print("\n| model | parameters (MiB) | strategy | workers | peak per rank (MiB) | max | vs ddp | wall (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for model in models:
        ddp: dict[int, float] = {}
        for strategy in STRATEGIES:
            for workers in (1, 2):
                if strategy == "pipeline" and workers == 1:
                    continue
                if strategy == "pipeline" and not catalog.MODELS[model].splittable:
                    continue
                peaks, params, wall = measure(spec_for(strategy, model, workers), root, env)
                if strategy == "ddp":
                    ddp[workers] = max(peaks)
                ratio = f"{max(peaks) / ddp[workers]:.2f}x" if workers in ddp else "-"
                ranks = ", ".join(f"{p:.0f}" for p in peaks)
                print(
                    f"| {model} | {params:.1f} | {strategy} | {workers} | {ranks} | {max(peaks):.0f} | {ratio} "
                    f"| {wall:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main(sys.argv[1:])
