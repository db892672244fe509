"""Teardown: do finished runs end COMPLETED? Many small 2-worker runs on the embedded default, counted.

    .venv/bin/python bench/bench_teardown.py [--strategies ddp,hogwild] [--runs 50] [--runs-dir DIR]

Each run is `hpcdl submit --profile local --gpus 2 ... --wait` (mnist-cnn, 256 synthetic images, 1 epoch),
one after another. A run that trained to the end used to be marked FAILED now and then: a worker
aborted at exit with "terminate called without an active exception" (SIGABRT), its process group's
threads racing the interpreter's teardown. Prints, per strategy, how many runs ended in each state and
how many job logs hold that message; exits 1 unless every run is COMPLETED.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
ABORT = "terminate called"


def submit(strategy: str, runs_dir: Path, study: str) -> None:
    cmd = [
        str(BIN / "hpcdl"),
        "submit",
        "--profile",
        "local",
        "--strategy",
        strategy,
        "--gpus",
        "2",
        "--model",
        "mnist-cnn",
        "--dataset",
        "synthetic",
        "--train-samples",
        "256",
        "--test-samples",
        "64",
        "--epochs",
        "1",
        "--runs-dir",
        str(runs_dir),
        "--study",
        study,
        "--wait",
    ]
    subprocess.run(cmd, capture_output=True, text=True, check=False)  # the run's exit.json says how it ended


def outcome(run: Path) -> tuple[str, bool]:
    """(state from exit.json, whether job.log holds the abort message)."""
    try:
        state = json.loads((run / "exit.json").read_text())["state"]
    except (OSError, ValueError, KeyError):
        state = "NO-EXIT-RECORD"
    log = run / "job.log"
    return state, log.exists() and ABORT in log.read_text(errors="replace")


def bench(strategy: str, runs: int, runs_dir: Path) -> dict:
    study = f"teardown-{strategy}"
    states: collections.Counter = collections.Counter()
    aborts, bad = 0, []
    for i in range(1, runs + 1):
        before = set((runs_dir / study).glob("*"))
        submit(strategy, runs_dir, study)
        new = sorted(set((runs_dir / study).glob("*")) - before)
        newest = new[-1] if new else runs_dir / study / f"submit-{i}-failed"
        state, aborted = outcome(newest)
        states[state] += 1
        aborts += aborted
        if state != "COMPLETED":
            bad.append(str(newest))
        print(f"{strategy} {i}/{runs}: {state}{' (terminate called)' if aborted else ''}", flush=True)
    return {"strategy": strategy, "runs": runs, "states": dict(states), "aborts": aborts, "not_completed": bad}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", default="ddp,hogwild")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--runs-dir", type=Path, default=None, help="default: a new temporary folder")
    args = ap.parse_args()
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="hpcdl-teardown-"))
    results = [bench(s, args.runs, runs_dir) for s in args.strategies.split(",")]
    print(f"\n| strategy | runs | COMPLETED | not COMPLETED | 'terminate called' in job.log |  ({runs_dir})")
    print("|---|---|---|---|---|")
    for r in results:
        done = r["states"].get("COMPLETED", 0)
        print(f"| {r['strategy']} 1x2 | {r['runs']} | {done} | {r['runs'] - done} | {r['aborts']} |")
        for path in r["not_completed"]:
            print(f"  not COMPLETED: {path}")
    return 0 if all(not r["not_completed"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
