"""DDP entrypoint vs a bare DDP loop, and 1 -> 2 worker efficiency, measured in the same run.

    .venv/bin/python bench/bench_ddp.py [--repeats 3] [--model resnet18] [--epochs 3]

1. samples/s of `python -m hpc_dl.jobs.ddp` vs bench/bare_ddp.py with the same model, synthetic data,
   batch and optimizer, both under torchrun with 2 workers, one thread each, interleaved (aim: >= 0.97x).
2. `hpcdl submit --wait` with 1 and 2 workers, then `hpcdl collect`: the 2-worker efficiency.
Epoch 1 is warm-up and not timed in either. Figures are printed as Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from hpc_dl.events import read_rank
from hpc_dl.runs import RunDir

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent


def torchrun(workers: int, module_args: list[str], env: dict) -> str:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={workers}", *module_args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout


def train_args(args) -> list[str]:
    """The training options both the entrypoint and `hpcdl submit` get (bare_ddp.py takes its own)."""
    return [
        "--model",
        args.model,
        "--dataset",
        "synthetic",
        "--train-samples",
        str(args.samples),
        "--test-samples",
        "64",
        "--batch-size",
        str(args.batch),
        "--epochs",
        str(args.epochs),
    ]


def entrypoint_rate(workers: int, entry_args: list[str], env: dict, run: RunDir) -> float:
    """samples/s of hpc_dl.jobs.ddp under torchrun, from rank 0's events (epoch 1 untimed)."""
    torchrun(workers, ["-m", "hpc_dl.jobs.ddp", "--run-dir", str(run.path), *entry_args], env)
    events, _ = read_rank(run.rank_events(0))
    rates = [e["throughput(samples/s)"] for e in events if e["event"] == "epoch_stop" and e["epoch"] > 1]
    return statistics.mean(rates)


def bare_rate(workers: int, bare_args: list[str], env: dict) -> float:
    """samples/s of bench/bare_ddp.py under torchrun (epoch 1 untimed)."""
    out = torchrun(workers, [str(HERE / "bare_ddp.py"), *bare_args], env)
    line = next(x for x in out.splitlines() if x.startswith("BARE "))
    return statistics.mean(json.loads(line[5:])["throughput"])


def bare_args(args) -> list[str]:
    """bare_ddp.py's options for the same model, data size, batch and epochs as train_args."""
    sizes = [f"--train-samples={args.samples}", f"--batch-size={args.batch}", f"--epochs={args.epochs}"]
    return [f"--model={args.model}", *sizes]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hpcdl-bench-"))
    env = dict(os.environ, OMP_NUM_THREADS="1", HPCDL_RUNS=str(tmp / "runs"), PYTHONPATH=str(HERE.parent))
    print(
        f"# DDP benchmarks: {args.model}, synthetic {args.samples} images, batch {args.batch}/worker, "
        f"{args.epochs} epochs (epoch 1 untimed), 1 thread/worker, {args.repeats} repeats; "
        f"{platform.node()} ({os.cpu_count()} cores)"
    )
    entrypoint_overhead(args, env, tmp)
    efficiency(args, env, tmp)


def entrypoint_overhead(args, env: dict, tmp: Path) -> None:
    """Section 1: the entrypoint against the bare loop, 2 workers."""
    entry, bare = [], []
    for i in range(args.repeats):  # interleaved, so drift in the machine hits both alike
        bare.append(bare_rate(2, bare_args(args), env))
        entry.append(entrypoint_rate(2, train_args(args), env, RunDir(tmp / f"entry-2-{i}")))
    me, mb = statistics.median(entry), statistics.median(bare)
    print("\n## 1. hpc_dl.jobs.ddp vs a bare DDP loop (2 workers)")
    print("| loop | samples/s (median) | all repeats |")
    print("|---|---|---|")
    print(f"| bare DDP loop (bench/bare_ddp.py) | {mb:.1f} | {', '.join(f'{x:.1f}' for x in bare)} |")
    print(f"| hpcdl DDP entrypoint | {me:.1f} | {', '.join(f'{x:.1f}' for x in entry)} |")
    print(f"\nratio entrypoint / bare: {me / mb:.3f}")


def efficiency(args, env: dict, tmp: Path) -> None:
    """Section 2: 1 and 2 workers through submit and collect, the way a user measures them."""
    print("\n## 2. 1 -> 2 workers through hpcdl submit (local executor) and hpcdl collect")
    submit = [str(BIN / "hpcdl"), "submit", "--profile", "local", "--study", "bench"]
    for gpus in ("1", "2"):
        for _ in range(args.repeats):
            cmd = [*submit, "--gpus", gpus, *train_args(args), "--wait"]
            subprocess.run(cmd, check=True, capture_output=True, env=env)
    out = subprocess.run(
        [str(BIN / "hpcdl"), "collect", str(tmp / "runs" / "bench"), "--out", str(tmp / "results"), "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    print("| workers | runs | samples/s (median) | speedup | efficiency | Karp-Flatt e |")
    print("|---|---|---|---|---|---|")
    for row in json.loads(out)["scaling"]:
        kf = "-" if row["karp_flatt"] is None else f"{row['karp_flatt']:.3f}"
        print(
            f"| {row['workers']} | {row['runs']} | {row['throughput']:.1f} | {row['speedup']:.3f} | "
            f"{row['efficiency']:.3f} | {kf} |"
        )


if __name__ == "__main__":
    main()
