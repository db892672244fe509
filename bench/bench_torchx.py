"""CLI start-up against TorchX for an equivalent DDP job, in the same run (aim: hpcdl <= 0.3x TorchX).

    python3 -m venv /tmp/torchx-venv && /tmp/torchx-venv/bin/pip install torchx
    .venv/bin/python bench/bench_torchx.py --torchx /tmp/torchx-venv/bin/torchx [--repeats 10]

Each command is a fresh process, as typed, timed `--repeats` times after one warm-up run, interleaved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HPCDL = str(Path(sys.executable).parent / "hpcdl")


def timed(argv: list[str], cwd: str, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--torchx", required=True, help="the torchx program of a side venv")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="hpcdl-bench-torchx-")
    Path(work, "train.py").write_text("print('hi')\n")
    env = dict(os.environ, HPCDL_RUNS=str(Path(work) / "runs"))
    pairs = {
        "1 node x 2, on this machine": (
            [
                args.torchx,
                "run",
                "--dryrun",
                "--scheduler",
                "local_cwd",
                "dist.ddp",
                "-j",
                "1x2",
                "--script",
                "train.py",
            ],
            [HPCDL, "submit", "--profile", "local", "--strategy", "ddp", "--nodes", "1", "--gpus", "2", "--dry-run"],
        ),
        "2 nodes x 4, SLURM": (
            [args.torchx, "run", "--dryrun", "--scheduler", "slurm", "dist.ddp", "-j", "2x4", "--script", "train.py"],
            [
                HPCDL,
                "submit",
                "--profile",
                "discovery",
                "--partition",
                "multigpu",
                "--strategy",
                "ddp",
                "--nodes",
                "2",
                "--gpus",
                "4",
                "--dry-run",
            ],
        ),
    }
    print(f"# dry runs of an equivalent DDP job, {args.repeats} runs each after a warm-up, {os.cpu_count()} cores")
    print("| job | torchx (median s) | hpcdl (median s) | hpcdl / torchx |")
    print("|---|---|---|---|")
    for name, (tx, hp) in pairs.items():
        timed(tx, work, env), timed(hp, work, env)
        t_tx, t_hp = [], []
        for _ in range(args.repeats):
            t_tx.append(timed(tx, work, env))
            t_hp.append(timed(hp, work, env))
        a, b = statistics.median(t_tx), statistics.median(t_hp)
        print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
