"""Wall time of `hpcdl --help` and `hpcdl submit --dry-run` (aim: under 0.3 s), as a user would type them.

.venv/bin/python bench/bench_cli.py [--repeats 20]
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

HPCDL = str(Path(sys.executable).parent / "hpcdl")
COMMANDS = {
    "hpcdl --help": [HPCDL, "--help"],
    "hpcdl submit --help": [HPCDL, "submit", "--help"],
    "hpcdl submit --dry-run (local, 1x2)": [HPCDL, "submit", "--profile", "local", "--gpus", "2", "--dry-run"],
    "hpcdl submit --dry-run (discovery, 2x4)": [
        HPCDL,
        "submit",
        "--profile",
        "discovery",
        "--partition",
        "multigpu",
        "--nodes",
        "2",
        "--gpus",
        "4",
        "--dry-run",
    ],
}


def time_command(argv: list[str], repeats: int, env: dict) -> list[float]:
    subprocess.run(argv, capture_output=True, check=True, env=env)  # warm the page cache
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    env = dict(os.environ, HPCDL_RUNS=tempfile.mkdtemp(prefix="hpcdl-bench-"))
    print(
        f"# CLI start-up, {args.repeats} runs each, {platform.node()} ({os.cpu_count()} cores), "
        f"python {platform.python_version()}"
    )
    print("| command | median (s) | min (s) | max (s) |")
    print("|---|---|---|---|")
    for name, argv in COMMANDS.items():
        t = time_command(argv, args.repeats, env)
        print(f"| `{name}` | {statistics.median(t):.3f} | {min(t):.3f} | {max(t):.3f} |")


if __name__ == "__main__":
    main()
