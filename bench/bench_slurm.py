"""hpcdl on the test SLURM (tests/cluster/slurm.sh): submit-to-start latency, a 64-point sweep, set-up.

    tests/cluster/slurm.sh up && .venv/bin/python bench/bench_slurm.py [--repeats 5]

1. `hpcdl submit` -> the job's wrapper starting on a node (exit.json's "started"), tiny job, median.
2. `hpcdl sweep` of 64 points (nodes 1,2 x gpus 1..4 x 8 repeats) as job arrays + one collect job: wall time
   of the command, as typed (aim: <= 2 s). The arrays are cancelled right after. The test cluster's
   MaxArraySize is 5, so that is 13 arrays, one sbatch each (a cluster with the default 1001 takes one).
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
    print(f"# SLURM benchmarks on the test cluster ({os.cpu_count()} cores), {args.repeats} repeats")
    submit_latency(env, args.repeats)
    sweep_wall(env, tmp)
    cluster_restart()


def hpcdl(env: dict, *argv: str) -> str:
    """`hpcdl ARGV` as typed; its stdout."""
    return subprocess.run([str(BIN / "hpcdl"), *argv], env=env, check=True, capture_output=True, text=True).stdout


def submit_latency(env: dict, repeats: int) -> None:
    """Section 1: the submit command's wall time, and how long until the job script starts on a node."""
    latencies, submit_walls = [], []
    for _ in range(repeats):
        t0 = time.time()
        out = hpcdl(
            env, *"submit --profile testcluster --study lat --train-samples 64 --test-samples 16 --time 5".split()
        )
        submit_walls.append(time.time() - t0)
        log = Path(re.search(r"folder  (\S+)", out)[1]) / "job.log"
        deadline = time.time() + 120
        while not log.exists() and time.time() < deadline:
            time.sleep(0.05)
        latencies.append(log.stat().st_mtime - t0 if log.exists() else float("nan"))
        subprocess.run([str(BIN / "hpcdl"), "submit", "--help"], env=env, capture_output=True)  # keep the loop honest
        while subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip():
            time.sleep(0.5)
    print("\n## 1. hpcdl submit -> job running on a node")
    print("| measure | median (s) | min (s) | max (s) |")
    print("|---|---|---|---|")
    for measure, values in (
        ("`hpcdl submit` command (render, folder, sbatch)", submit_walls),
        ("submit -> job script started on the node", latencies),
    ):
        print(f"| {measure} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} |")


def sweep_wall(env: dict, tmp: Path) -> None:
    """Section 2: `hpcdl sweep` of 64 points (arrays of MaxArraySize), three times; each is cancelled at once."""
    walls = []
    for i in range(3):
        t0 = time.perf_counter()
        shape = "--nodes 1,2 --gpus 1,2,3,4 --repeats 8 --throttle 4 --time 5".split()
        out = hpcdl(
            env, "sweep", "--profile", "testcluster", "--study", f"s64-{i}", *shape, "--out", str(tmp / f"out-{i}")
        )
        walls.append(time.perf_counter() - t0)
        array = re.search(r"as job (\d+) ", out)[1]
        collect = re.search(r"collect  job (\d+)", out)[1]
        record = json.loads((tmp / "runs" / f"s64-{i}" / f"sweep-{array}.json").read_text())
        assert len(record["runs"]) == 64
        subprocess.run(["scancel", *record["arrays"], collect], env=env, check=True)
    arrays = len(record["arrays"])
    print(f"\n## 2. a 64-point sweep as {arrays} job array(s) (+ collect job), wall time of `hpcdl sweep`")
    print(f"runs: {', '.join(f'{w:.3f}' for w in walls)} s; median {statistics.median(walls):.3f} s")


def cluster_restart() -> None:
    """Section 3: the cluster's daemons down and up again."""
    t0 = time.perf_counter()
    subprocess.run([str(CLUSTER), "down"], check=True, capture_output=True)
    t1 = time.perf_counter()
    subprocess.run([str(CLUSTER), "up"], check=True, capture_output=True)
    t2 = time.perf_counter()
    print("\n## 3. the cluster's daemons (packages installed)")
    print(f"down {t1 - t0:.1f} s, up (munge, MariaDB, slurmdbd, slurmctld, 2 slurmd, nodes idle) {t2 - t1:.1f} s")


if __name__ == "__main__":
    main()
