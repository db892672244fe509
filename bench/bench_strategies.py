"""Every strategy side by side, measured through hpcdl itself (local profile, CPU workers, in one run).

    .venv/bin/python bench/bench_strategies.py

1. samples/s of every strategy for resnet18 on synthetic 32x32 data, 1 and 2 workers, one thread each
   (pipeline needs 2 stages; dp on CPU has one device), epoch 1 untimed; plus horovod with fp16 compression.
2. PSGD test accuracy against P = 1..4 for --average once and --average every:10 (mnist-cnn, Fashion-MNIST).
Prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent


def hpcdl(*args: str, env: dict) -> str:
    return subprocess.run([str(BIN / "hpcdl"), *args], env=env, check=True, capture_output=True, text=True).stdout


def table(study_dir: Path, out: Path, env: dict) -> list[dict]:
    return json.loads(hpcdl("collect", str(study_dir), "--out", str(out), "--no-plots", "--json", env=env))["scaling"]


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hpcdl-bench-strategies-"))
    env = dict(os.environ, HPCDL_RUNS=str(tmp / "runs"))
    throughput(tmp, env)
    psgd_accuracy(tmp, env)


def throughput(tmp: Path, env: dict) -> None:
    """Section 1: samples/s of every strategy with 1 and 2 workers."""
    common = (
        "--profile local --model resnet18 --dataset synthetic --train-samples 1024 --test-samples 64 "
        "--batch-size 32 --epochs 2 --study thr --no-collect --wait"
    ).split()
    hpcdl("sweep", "--strategy", "ddp,fsdp,hogwild,horovod,psgd", "--gpus", "1,2", *common, env=env)
    hpcdl("sweep", "--strategy", "dp", "--gpus", "1", *common, env=env)
    hpcdl("sweep", "--strategy", "pipeline", "--gpus", "2", *common, env=env)
    hpcdl("sweep", "--strategy", "horovod", "--gpus", "1,2", "--compression", "fp16", *common, env=env)
    rows = table(tmp / "runs" / "thr", tmp / "out-thr", env)
    print(
        f"# Strategies, resnet18 on synthetic 32x32 images (1,024), batch 32/worker, 2 epochs (epoch 1 untimed), "
        f"one thread per worker; {os.cpu_count()} cores"
    )
    print("\n| strategy | variant | workers | samples/s | speedup vs 1 worker | efficiency |")
    print("|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["strategy"], r["variant"], r["workers"])):
        base = "-" if r["baseline_workers"] == r["workers"] and r["workers"] > 1 else f"{r['speedup']:.3f}"
        eff = "-" if base == "-" else f"{r['efficiency']:.3f}"
        print(f"| {r['strategy']} | {r['variant']} | {r['workers']} | {r['throughput']:.1f} | {base} | {eff} |")


def psgd_accuracy(tmp: Path, env: dict) -> None:
    """Section 2: PSGD's test accuracy against P, averaging once against every 10 steps."""
    psgd = (
        "--profile local --strategy psgd --model mnist-cnn --dataset fashion-mnist --train-samples 8192 "
        "--test-samples 2000 --batch-size 64 --epochs 3 --lr 0.05 --study psgd --no-collect --wait --gpus 1,2,3,4"
    ).split()
    hpcdl("sweep", *psgd, "--average", "once", env=env)
    hpcdl("sweep", *psgd, "--average", "every:10", env=env)
    rows = table(tmp / "runs" / "psgd", tmp / "out-psgd", env)
    print(
        "\n# PSGD: test accuracy against P (mnist-cnn, Fashion-MNIST 8,192 train / 2,000 test, 3 epochs, "
        "batch 64/worker, lr 0.05)"
    )
    print("\n| P | --average once | --average every:10 | samples/s once | samples/s every:10 |")
    print("|---|---|---|---|---|")
    by = {(r["variant"], r["workers"]): r for r in rows}
    for p in (1, 2, 3, 4):
        a, b = by[("average=once", p)], by[("average=every:10", p)]
        print(
            f"| {p} | {a['test_accuracy']:.4f} | {b['test_accuracy']:.4f} | {a['throughput']:.1f} | "
            f"{b['throughput']:.1f} |"
        )


if __name__ == "__main__":
    main()
