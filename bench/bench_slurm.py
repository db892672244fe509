"""hpcdl on the test SLURM (tests/cluster/slurm.sh): submit-to-start latency, a 64-point sweep, set-up.

    tests/cluster/slurm.sh up && .venv/bin/python bench/bench_slurm.py [--repeats 5]

1. `hpcdl submit` -> the job's wrapper starting on a node (exit.json's "started"), tiny job, median.
2. `hpcdl sweep` of 64 points (nodes 1,2 x gpus 1..4 x 8 repeats) as ONE array + collect job: wall time of
   the command, as typed (aim: <= 2 s). The array is cancelled right after.
3. Restart of the cluster's daemons with the packages installed (`slurm.sh down; slurm.sh up`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
CLUSTER = REPO / "tests" / "cluster" / "slurm.sh"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hpcdl-bench-slurm-"))
    env = dict(
        os.environ,
        SLURM_CONF=os.environ.get("SLURM_CONF", "/var/tmp/hpcdl-slurm/etc/slurm.conf"),
        HPCDL_PROFILES=str(REPO / "tests" / "cluster" / "profiles"),
        HPCDL_RUNS=str(tmp / "runs"),
    )
    hpcdl = [str(BIN / "hpcdl")]
    print(f"# SLURM benchmarks on the test cluster ({os.cpu_count()} cores), {args.repeats} repeats")

    latencies, submit_walls = [], []
    for _ in range(args.repeats):
        t0 = time.time()
        out = subprocess.run(
            [
                *hpcdl,
                "submit",
                "--profile",
                "testcluster",
                "--study",
                "lat",
                "--train-samples",
                "64",
                "--test-samples",
                "16",
                "--time",
                "5",
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        submit_walls.append(time.time() - t0)
        run = Path(re.search(r"folder  (\S+)", out)[1])
        deadline = time.time() + 120
        while not (run / "job.log").exists() and time.time() < deadline:
            time.sleep(0.05)
        latencies.append((run / "job.log").stat().st_mtime - t0 if (run / "job.log").exists() else float("nan"))
        subprocess.run([*hpcdl, "submit", "--help"], env=env, capture_output=True)  # keep the loop honest
        while subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip():
            time.sleep(0.5)
    print("\n## 1. hpcdl submit -> job running on a node")
    print("| measure | median (s) | min (s) | max (s) |")
    print("|---|---|---|---|")
    print(
        f"| `hpcdl submit` command (render, folder, sbatch) | {statistics.median(submit_walls):.3f} | "
        f"{min(submit_walls):.3f} | {max(submit_walls):.3f} |"
    )
    print(
        f"| submit -> job script started on the node | {statistics.median(latencies):.3f} | {min(latencies):.3f} | "
        f"{max(latencies):.3f} |"
    )

    walls = []
    for i in range(3):
        t0 = time.perf_counter()
        out = subprocess.run(
            [
                *hpcdl,
                "sweep",
                "--profile",
                "testcluster",
                "--study",
                f"s64-{i}",
                "--nodes",
                "1,2",
                "--gpus",
                "1,2,3,4",
                "--repeats",
                "8",
                "--throttle",
                "4",
                "--time",
                "5",
                "--out",
                str(tmp / f"out-{i}"),
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        walls.append(time.perf_counter() - t0)
        array = re.search(r"as job (\d+) ", out)[1]
        collect = re.search(r"collect  job (\d+)", out)[1]
        record = json.loads((tmp / "runs" / f"s64-{i}" / f"sweep-{array}.json").read_text())
        assert len(record["runs"]) == 64
        subprocess.run(["scancel", array, collect], env=env, check=True)
    print("\n## 2. a 64-point sweep as one job array (+ collect job), wall time of `hpcdl sweep`")
    print(f"runs: {', '.join(f'{w:.3f}' for w in walls)} s; median {statistics.median(walls):.3f} s")

    t0 = time.perf_counter()
    subprocess.run([str(CLUSTER), "down"], check=True, capture_output=True)
    t1 = time.perf_counter()
    subprocess.run([str(CLUSTER), "up"], check=True, capture_output=True)
    t2 = time.perf_counter()
    print("\n## 3. the cluster's daemons (packages installed)")
    print(f"down {t1 - t0:.1f} s, up (munge, MariaDB, slurmdbd, slurmctld, 2 slurmd, nodes idle) {t2 - t1:.1f} s")


if __name__ == "__main__":
    main()
