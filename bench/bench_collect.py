"""`hpcdl collect` over many runs against the floor of reading and json-decoding the same lines.

    .venv/bin/python bench/bench_collect.py [--runs 1000] [--ranks 4] [--epochs 5]

Generates run folders in the layout hpcdl writes (spec, exit record, result, per-rank JSON lines),
then times (best of 3) the floor (read every events file, json.loads every line) and
analysis.collect.collect() (load + scaling table + fits + Markdown); aim: collect <= 2x the floor.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from hpc_dl.analysis import collect as col

from hpc_dl.runs import RunDir, write_json
from hpc_dl.spec import JobSpec


def generate(root: Path, runs: int, ranks: int, epochs: int) -> None:
    for i in range(runs):
        gpus = ranks if i % 2 else 1
        run = RunDir.create(root, "big", f"run-{i:05d}")
        write_json(run.spec, JobSpec(gpus=gpus, epochs=epochs, batch_size=32 << (i % 3)).to_dict())
        write_json(run.exit, {"state": "COMPLETED", "returncode": 0, "started": 0.0, "ended": 1.0})
        write_json(run.result, {"status": "success", "test_accuracy": 0.8})
        for rank in range(gpus):
            lines = [
                {
                    "event": "run_start",
                    "time": 0.0,
                    "rank": rank,
                    "world_size": gpus,
                    "device": "cpu",
                    "device_name": "cpu",
                    "global_batch_size": 32 * gpus,
                    "strategy": "ddp",
                }
            ]
            for e in range(1, epochs + 1):
                lines.append(
                    {
                        "event": "epoch_stop",
                        "time": float(e),
                        "rank": rank,
                        "epoch": e,
                        "time(s)": 1.0,
                        "rank_time(s)": 1.0,
                        "rank_data_time(s)": 0.1,
                        "samples": 1000,
                        "rank_samples": 1000 // gpus,
                        "throughput(samples/s)": 1000.0 * gpus**0.8,
                        "loss": 1.0 / e,
                        "accuracy": 0.5,
                    }
                )
                lines.append(
                    {
                        "event": "eval",
                        "time": float(e),
                        "rank": rank,
                        "epoch": e,
                        "test_accuracy": 0.8,
                        "test_loss": 0.5,
                        "test_samples": 100,
                    }
                )
            lines.append({"event": "run_stop", "time": 9.0, "rank": rank, "status": "success", "time(s)": 9.0})
            run.rank_events(rank).write_text("".join(json.dumps(x) + "\n" for x in lines))


def floor(root: Path) -> int:
    n = 0
    for path in root.rglob("rank-*.jsonl"):
        for line in path.read_text().splitlines():
            json.loads(line)
            n += 1
    return n


def best(f, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hpcdl-bench-collect-"))
    generate(root, args.runs, args.ranks, args.epochs)
    lines = floor(root)
    t_floor = best(lambda: floor(root))
    t_collect = best(lambda: col.collect([root]).markdown)
    print(f"# collect over {args.runs} runs (half with {args.ranks} ranks), {lines} event lines")
    print(f"floor (read + json.loads every line): {t_floor:.3f} s")
    print(f"hpcdl collect (load, scaling table, fits, Markdown): {t_collect:.3f} s = {t_collect / t_floor:.2f}x floor")


if __name__ == "__main__":
    main()
