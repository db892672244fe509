"""Run folders -> two tidy DataFrames: one row per run, one row per run and epoch.

Never crashes on what a job left behind: truncated or corrupt JSON lines are skipped and counted, a
run with an unreadable spec is listed as CORRUPT, an unfinished run as UNFINISHED.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hpc_dl import triage
from hpc_dl.runs import RunDir, find_runs, read_json

RUN_COLUMNS = [
    "run",
    "study",
    "strategy",
    "variant",
    "model",
    "dataset",
    "nodes",
    "gpus_per_node",
    "workers",
    "batch_size",
    "global_batch_size",
    "precision",
    "epochs",
    "epochs_done",
    "restarts",
    "device",
    "device_name",
    "state",
    "reason",
    "category",
    "evidence",
    "note",
    "fold",
    "scheduler",
    "started",
    "ended",
    "test_accuracy",
    "folder",
]
PHASES = ("forward", "backward", "optimizer")
EPOCH_COLUMNS = [
    "run",
    "epoch",
    "workers",
    "time_s",
    "data_time_s",
    "forward_s",
    "backward_s",
    "optimizer_s",
    "rank_samples",
    "samples",
    "throughput",
    "loss",
    "accuracy",
    "test_accuracy",
]


@dataclass
class Loaded:
    runs: pd.DataFrame
    epochs: pd.DataFrame
    skipped_lines: int


def read_events(path: Path) -> tuple[list[dict], int]:
    """The events in one rank's file, and how many lines were not valid events."""
    events, skipped = [], 0
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if not isinstance(record, dict) or not isinstance(record.get("event"), str):
            skipped += 1
            continue
        events.append(record)
    return events, skipped


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


VARIANT_FIELDS = ("compression", "backward_passes", "average", "microbatches", "scheduler")


def variant(spec: dict) -> str:
    """A strategy's options that change what is measured (psgd's averaging, horovod's compression, ...)."""
    parts = [f"{k}={spec[k]}" for k in VARIANT_FIELDS if spec.get(k) is not None]
    return ",".join(parts) or "-"


def read_run(run: RunDir) -> tuple[dict, list[dict], int]:
    spec = read_json(run.spec)
    row = dict.fromkeys(RUN_COLUMNS)
    row.update(run=run.run_id, study=run.study, folder=str(run.path))
    if not isinstance(spec, dict):
        row.update(state="CORRUPT", reason=f"unreadable {run.spec.name}")
        return row, [], 0
    row.update(
        strategy=spec.get("strategy"),
        model=spec.get("model"),
        dataset=spec.get("dataset"),
        nodes=spec.get("nodes"),
        gpus_per_node=spec.get("gpus"),
        batch_size=spec.get("batch_size"),
        precision=spec.get("precision"),
        epochs=spec.get("epochs"),
    )
    row["variant"] = variant(spec)
    row.update(fold=spec.get("fold"), scheduler=spec.get("scheduler"))
    if isinstance(spec.get("nodes"), int) and isinstance(spec.get("gpus"), int):
        row["workers"] = spec["nodes"] * spec["gpus"]
    skipped = 0
    by_rank: dict[int, list[dict]] = {}
    for path in run.event_files():
        events, bad = read_events(path)
        skipped += bad
        by_rank[int(path.stem.split("-")[1])] = events

    # the global (all-reduced) values are the same on every rank: take them from the lowest rank that has them
    epochs: dict[int, dict] = {}
    data_time: dict[int, float] = {}
    phases: dict[int, list[list[float]]] = {}
    for rank in sorted(by_rank):
        for ev in by_rank[rank]:
            kind = ev["event"]
            if kind == "run_start" and rank == min(by_rank):
                row["restarts"] = (row["restarts"] or 0) + 1
            if kind == "run_start" and row["device"] is None:
                row.update(
                    note=ev.get("note"),
                    device=ev.get("device"),
                    device_name=ev.get("device_name"),
                    global_batch_size=ev.get("global_batch_size"),
                )
                if isinstance(ev.get("world_size"), int):
                    row["workers"] = ev["world_size"]
            elif kind == "epoch_stop" and isinstance(ev.get("epoch"), int):
                e = ev["epoch"]
                dt = _num(ev.get("rank_data_time(s)"))
                if dt is not None:
                    data_time[e] = max(data_time.get(e, 0.0), dt)
                ph = [_num(ev.get(f"rank_{name}_time(s)")) for name in PHASES] + [_num(ev.get("rank_samples"))]
                if None not in ph:
                    phases.setdefault(e, []).append(ph)
                epochs.setdefault(
                    e,
                    {
                        "run": run.run_id,
                        "epoch": e,
                        "time_s": _num(ev.get("time(s)")),
                        "samples": _num(ev.get("samples")),
                        "throughput": _num(ev.get("throughput(samples/s)")),
                        "loss": _num(ev.get("loss")),
                        "accuracy": _num(ev.get("accuracy")),
                        "test_accuracy": None,
                    },
                )
            elif kind == "eval" and isinstance(ev.get("epoch"), int) and ev["epoch"] in epochs:
                if epochs[ev["epoch"]]["test_accuracy"] is None:
                    epochs[ev["epoch"]]["test_accuracy"] = _num(ev.get("test_accuracy"))
    for e, rec in epochs.items():
        rec["workers"] = row["workers"]
        rec["data_time_s"] = data_time.get(e)
        per_rank = phases.get(e)
        if per_rank:  # the mean over the ranks that timed their phases
            means = [sum(col) / len(per_rank) for col in zip(*per_rank, strict=True)]
            rec.update(forward_s=means[0], backward_s=means[1], optimizer_s=means[2], rank_samples=means[3])
    row["epochs_done"] = len(epochs)
    row["restarts"] = max((row["restarts"] or 1) - 1, 0)

    ended = read_json(run.exit)
    result = read_json(run.result)
    if isinstance(ended, dict):
        row.update(started=_num(ended.get("started")), ended=_num(ended.get("ended")))
    if isinstance(ended, dict) and ended.get("state"):
        row["state"] = ended["state"]
        if ended["state"] != "COMPLETED":
            row["reason"] = triage.reason(run, by_rank)
    elif isinstance(result, dict) and result.get("status") == "success":
        row["state"] = "COMPLETED"
    elif triage.failed_rank(by_rank):
        row.update(state="FAILED", reason=triage.reason(run, by_rank))
    elif run.cancel.exists():
        row.update(state="CANCELLED", reason="cancelled by hpcdl cancel")
    else:
        row.update(state="UNFINISHED", reason=f"{len(epochs)} of {row['epochs']} epochs logged; no exit record")
    if row["state"] == "COMPLETED" and isinstance(result, dict):
        row["test_accuracy"] = _num(result.get("test_accuracy"))
    if row["state"] == "COMPLETED" and row["epochs"] is not None and len(epochs) < row["epochs"]:
        row.update(state="INCOMPLETE", reason=f"only {len(epochs)} of {row['epochs']} epochs logged")
    if row["state"] in ("FAILED", "TERMINATED", "CANCELLED"):
        row["category"], row["evidence"] = triage.classify(run, row["state"], by_rank)
    return row, [epochs[e] for e in sorted(epochs)], skipped


def load(paths: list[Path]) -> Loaded:
    """Every run under the given folders, as DataFrames."""
    rows, epoch_rows, skipped = [], [], 0
    found = find_runs([Path(p) for p in paths])
    if len(found) >= 200 and sys.stderr.isatty():  # thousands of runs: show progress on a terminal
        from tqdm import tqdm

        found = tqdm(found, desc="reading runs", unit="run", file=sys.stderr)
    for run in found:
        row, erows, bad = read_run(run)
        rows.append(row)
        epoch_rows += erows
        skipped += bad
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    epochs = pd.DataFrame(epoch_rows, columns=EPOCH_COLUMNS)
    return Loaded(runs=runs, epochs=epochs, skipped_lines=skipped)
