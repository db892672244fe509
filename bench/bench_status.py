"""`hpcdl status` over one big sweep on the test SLURM: wall time and scheduler calls (issue 12).

    tests/cluster/slurm.sh up && .venv/bin/python bench/bench_status.py [--runs 1000]

A real array of --runs held tasks (`sbatch --array=0-N --hold`, so nothing runs) stands for a sweep;
each task gets a run folder with its spec and submission record, as `hpcdl sweep` writes them. Every
call to sacct, squeue and scontrol goes through a logging shim on PATH, so the calls are counted, not
guessed. Then the same with a hung sacct (slurmdbd down): status must answer within its one timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
SHIM = '#!/bin/sh\necho "$0 $*" >> {log}\n{body}\n'


def shims(folder: Path, log: Path, hung_sacct: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("sacct", "squeue", "scontrol"):
        real = subprocess.run(["which", name], capture_output=True, text=True, check=True).stdout.strip()
        body = "sleep 600" if hung_sacct and name == "sacct" else f'exec {real} "$@"'
        (folder / name).write_text(SHIM.format(log=log, body=body))
        (folder / name).chmod(0o755)


def make_study(root: Path, runs: int, env: dict) -> str:
    out = subprocess.run(
        ["sbatch", "--parsable", "--hold", f"--array=0-{runs - 1}", "--time=1", "--wrap", "true"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    array = out.stdout.strip().split(";")[0]
    spec = {"strategy": "ddp", "nodes": 1, "gpus": 1, "time_limit": 1}
    for i in range(runs):
        run = root / "big" / f"run-{i:05d}"
        run.mkdir(parents=True)
        (run / "spec.json").write_text(json.dumps(spec))
        (run / "submission.json").write_text(json.dumps({"executor": "slurm", "job_id": f"{array}_{i}"}))
    return array


def status(env: dict, log: Path) -> tuple[float, int, list[dict]]:
    log.write_text("")
    t0 = time.perf_counter()
    out = subprocess.run([str(BIN / "hpcdl"), "status", "--json"], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0, len(log.read_text().splitlines()), json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hpcdl-bench-status-"))
    env = dict(os.environ, SLURM_CONF=os.environ.get("SLURM_CONF", "/var/tmp/hpcdl-slurm/etc/slurm.conf"))
    array = make_study(tmp / "runs", args.runs, env)
    log = tmp / "calls.log"
    try:
        for hung, timeout in ((False, "10"), (True, "2")):
            shims(tmp / ("hung" if hung else "bin"), log, hung)
            run_env = dict(env, PATH=f"{tmp / ('hung' if hung else 'bin')}:{env['PATH']}", HPCDL_RUNS=str(tmp / "runs"))
            seconds, calls, rows = status(dict(run_env, HPCDL_QUERY_TIMEOUT=timeout), log)
            states = sorted({r["state"] for r in rows})
            what = f"sacct hung, HPCDL_QUERY_TIMEOUT={timeout}" if hung else "sacct answers"
            print(f"{len(rows)} runs, {what}: {seconds:.2f} s, {calls} scheduler call(s), states {states}")
    finally:
        subprocess.run(["scancel", array], env=env)


if __name__ == "__main__":
    main()
