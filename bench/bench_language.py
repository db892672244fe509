"""Language models through hpcdl (issue 22): gpt-small's tokens/s under ddp, fsdp and pipeline, 1 and 2 workers.

    .venv/bin/python bench/bench_language.py [--model gpt-small] [--train-samples 64] [--batch-size 4] [--repeats 2]

One sweep on the local profile (CPU workers, one thread each, the points one after another): ddp and fsdp
at 1 and 2 workers, the 2-stage pipeline (a pipeline has at least 2 stages: its 1-stage point is the whole
model on one worker, ddp 1x1), and ddp and fsdp with --activation-checkpointing at 2 workers. Epoch 1 is
untimed (collect's throughput is the later epochs'; with repeats, their median and 95 % interval). Prints
Markdown for BENCHMARKS.md, with the machine's load average before and after (a shared machine's other
work shows in the figures), and collect's peak memory per rank (CPU peak RSS, MALLOC_MMAP_THRESHOLD_=1 MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
MEMORY = "peak_memory_mib"  # collect's peak-memory column, where the events carry it


def hpcdl(*args: str, env: dict) -> str:
    return subprocess.run([str(BIN / "hpcdl"), *args], env=env, check=True, capture_output=True, text=True).stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gpt-small")
    p.add_argument("--train-samples", type=int, default=64, help="blocks of the model's context + 1 bytes")
    p.add_argument("--batch-size", type=int, default=4, help="blocks per worker")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    load = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="hpcdl-bench-language-"))
    # freed large blocks go back to the system, so a CPU worker's peak RSS follows its live memory (as
    # bench/bench_memory.py measures it; glibc's adaptive threshold keeps fsdp's gathered blocks resident)
    env = dict(os.environ, HPCDL_RUNS=str(tmp / "runs"), MALLOC_MMAP_THRESHOLD_=str(2**20))
    common = [
        *("--profile", "local", "--model", args.model, "--dataset", "synthetic-text", "--study", "lm"),
        *("--train-samples", str(args.train_samples), "--test-samples", "8", "--epochs", str(args.epochs)),
        *("--batch-size", str(args.batch_size), "--repeats", str(args.repeats), "--no-collect", "--wait"),
    ]
    hpcdl("sweep", "--strategy", "ddp,fsdp,pipeline", "--gpus", "1,2", "--skip-invalid", *common, env=env)
    hpcdl("sweep", "--strategy", "ddp,fsdp", "--gpus", "2", "--activation-checkpointing", *common, env=env)
    out = hpcdl("collect", str(tmp / "runs" / "lm"), "--out", str(tmp / "out"), "--no-plots", "--json", env=env)
    print_table(json.loads(out)["scaling"], args, load)


def print_table(rows: list[dict], args, load: tuple[float, ...]) -> None:
    memory = any(r.get(MEMORY) is not None for r in rows)
    print(
        f"# {args.model} on synthetic-text ({args.train_samples} blocks, batch {args.batch_size} per worker, "
        f"{args.epochs} epochs, epoch 1 untimed, {args.repeats} run(s) a point), one thread per worker; "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}; load average "
        f"{load[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    columns = ["strategy", "variant", "workers", "tokens/s", "95 % CI (tokens/s)", "vs ddp 1 worker"]
    columns += ["time/epoch (s)", "peak memory/rank (MiB)"]
    print("\n| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|---|")
    base = next(r for r in rows if (r["strategy"], r["variant"], r["workers"]) == ("ddp", "-", 1))
    for r in sorted(rows, key=lambda r: (r["strategy"], r["variant"], r["workers"])):
        tokens, per_sample = r["throughput_tokens_per_s"], r["throughput_tokens_per_s"] / r["throughput"]
        low, high = r.get("throughput_ci_low"), r.get("throughput_ci_high")  # samples/s
        ci = f"{low * per_sample:.0f}-{high * per_sample:.0f}" if low is not None and high is not None else "-"
        mem = f"{r[MEMORY]:.0f}" if memory and r.get(MEMORY) is not None else "not measured"
        print(
            f"| {r['strategy']} | {r['variant']} | {r['workers']} | {tokens:.1f} | {ci} | "
            f"{tokens / base['throughput_tokens_per_s']:.2f}x | {r['time_per_epoch_s']:.2f} | {mem} |"
        )


if __name__ == "__main__":
    main()
