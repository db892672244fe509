"""Run folders -> two tidy DataFrames: one row per run, one row per run and epoch.

Never crashes on what a job left behind: truncated or corrupt JSON lines are skipped and counted, a
run with an unreadable spec is listed as CORRUPT, an unfinished run as UNFINISHED.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hpc_dl import catalog, control, events, probe, triage
from hpc_dl.runs import RunDir, find_runs, read_json

from . import cost

# a run's final quality for the run, epoch and scaling tables: every task's metrics (catalog.TASKS), each
# the key in its eval records and result.json (test_accuracy; test_map, test_map50, test_map75; ...)
QUALITY = tuple(m.key for m in catalog.metrics())
# the tasks' own per-epoch stats (epoch_stop key -> column: time_per_iteration(s) -> time_per_iteration_s)
EPOCH_STATS = {m.key: m.name for m in catalog.epoch_metrics()}
# columns only some tasks fill; the Markdown tables leave out those no run has (collect.shown_headers)
TASK_COLUMNS = (*EPOCH_STATS.values(), *QUALITY)
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
    *QUALITY,
    *cost.RUN_FIELDS,  # memory, GPU utilisation, the allocation and its resource-hours (cost.py)
    *control.USAGE,  # the scheduler's accounting (SLURM: sacct's MaxRSS, TotalCPU, seff's CPU efficiency)
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
    *EPOCH_STATS.values(),
    "loss",
    "accuracy",
    *QUALITY,
    "peak_memory_mib",
    "gpu_util_mean",
    "resource_hours",
]


@dataclass
class Loaded:
    runs: pd.DataFrame
    epochs: pd.DataFrame
    skipped_lines: int


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


VARIANT_FIELDS = ("compression", "backward_passes", "average", "microbatches", "scheduler", "activation_checkpointing")


def variant(spec: dict) -> str:
    """A strategy's options that change what is measured (psgd's averaging, horovod's compression, ...); a
    switch only when it is on."""
    parts = [f"{k}={spec[k]}" for k in VARIANT_FIELDS if spec.get(k) not in (None, False)]
    return ",".join(parts) or "-"


def read_run(run: RunDir) -> tuple[dict, list[dict], int]:
    """One run's row, its epochs' rows, and how many event lines were skipped."""
    spec = read_json(run.spec)
    row = dict.fromkeys(RUN_COLUMNS)
    row.update(run=run.run_id, study=run.study, folder=str(run.path))
    if not isinstance(spec, dict):
        row.update(state="CORRUPT", reason=f"unreadable {run.spec.name}")
        return row, [], 0
    row.update(_spec_fields(spec))
    by_rank, skipped = events.read_run(run)
    row.update(_run_start_fields(by_rank))
    epochs = _epochs(run.run_id, by_rank)
    _measures(row, epochs, by_rank)
    if spec.get("script"):  # your own script (hpcdl submit --script): what it reported, else its wall time
        epochs = _script_run(run, row, by_rank, epochs)
    for rec in epochs:
        rec["workers"] = row["workers"]
    row["epochs_done"] = len(epochs)
    _settle_state(run, row, by_rank)
    row.update(cost.held(read_json(run.exit), spec, read_json(run.profile)))
    return row, epochs, skipped


def _measures(row: dict, epochs: list[dict], by_rank: dict[int, list[dict]]) -> None:
    """Peak memory and GPU utilisation, the run's and each epoch's (cost.py)."""
    peaks, row["peak_memory_mib"], row["memory_source"] = cost.memory(by_rank)
    utils, row["gpu_util_mean"] = cost.gpu_util(by_rank)
    for rec in epochs:
        rec.update(peak_memory_mib=peaks.get(rec["epoch"]), gpu_util_mean=utils.get(rec["epoch"]))


def _spec_fields(spec: dict) -> dict:
    """What the spec says about the run (the events may correct workers: the world size that ran)."""
    fields = {
        "strategy": spec.get("strategy"),
        "model": spec.get("model"),
        "dataset": spec.get("dataset"),
        "nodes": spec.get("nodes"),
        "gpus_per_node": spec.get("gpus"),
        "batch_size": spec.get("batch_size"),
        "precision": spec.get("precision"),
        "epochs": spec.get("epochs"),
        "variant": variant(spec),
        "fold": spec.get("fold"),
        "scheduler": spec.get("scheduler"),
    }
    if isinstance(spec.get("nodes"), int) and isinstance(spec.get("gpus"), int):
        fields["workers"] = spec["nodes"] * spec["gpus"]
    return fields


def _run_start_fields(by_rank: dict[int, list[dict]]) -> dict:
    """The device and world from the first run_start that names a device; restarts from the lowest rank's
    run_start count (every start after the first is a requeue or a rerun)."""
    fields: dict = {"restarts": 0}
    if by_rank:
        starts = sum(ev["event"] == "run_start" for ev in by_rank[min(by_rank)])
        fields["restarts"] = max(starts - 1, 0)
    for ev in (ev for rank in sorted(by_rank) for ev in by_rank[rank] if ev["event"] == "run_start"):
        if fields.get("device") is not None:
            break
        fields.update(
            note=ev.get("note"),
            device=ev.get("device"),
            device_name=ev.get("device_name"),
            global_batch_size=ev.get("global_batch_size"),
        )
        if isinstance(ev.get("world_size"), int):
            fields["workers"] = ev["world_size"]
    return fields


def _epochs(run_id: str, by_rank: dict[int, list[dict]]) -> list[dict]:
    """One row per logged epoch, in order.

    The global (all-reduced) values are the same on every rank: they come from the lowest rank that has
    them. The data wait is the slowest rank's; the phase times are the mean over the ranks that timed them.
    """
    epochs: dict[int, dict] = {}
    data_time: dict[int, float] = {}
    phases: dict[int, list[list[float]]] = {}
    for ev in (ev for rank in sorted(by_rank) for ev in by_rank[rank]):
        e = ev.get("epoch")
        if not isinstance(e, int):
            continue
        if ev["event"] == "epoch_stop":
            dt = _num(ev.get("rank_data_time(s)"))
            if dt is not None:
                data_time[e] = max(data_time.get(e, 0.0), dt)
            ph = [_num(ev.get(f"rank_{name}_time(s)")) for name in PHASES] + [_num(ev.get("rank_samples"))]
            if None not in ph:
                phases.setdefault(e, []).append(ph)
            epochs.setdefault(e, _epoch_row(run_id, ev))
        elif ev["event"] == "eval" and e in epochs and all(epochs[e][k] is None for k in QUALITY):
            epochs[e].update({k: _num(ev.get(k)) for k in QUALITY})
    for e, rec in epochs.items():
        rec["data_time_s"] = data_time.get(e)
        if phases.get(e):
            means = [sum(col) / len(phases[e]) for col in zip(*phases[e], strict=True)]
            rec.update(forward_s=means[0], backward_s=means[1], optimizer_s=means[2], rank_samples=means[3])
    return [epochs[e] for e in sorted(epochs)]


def _script_run(run: RunDir, row: dict, by_rank: dict[int, list[dict]], epochs: list[dict]) -> list[dict]:
    """A --script run: model, data set and batch from its report.start() (else the script's name), its
    epochs as reported; a script that reported none gets one row with the job's wall time (exit.json)."""
    start = next((ev for rank in sorted(by_rank) for ev in by_rank[rank] if ev["event"] == "run_start"), {})
    name = Path(str(read_json(run.spec).get("script"))).name
    row.update(
        model=start.get("model", name),
        dataset=start.get("dataset", "-"),
        batch_size=start.get("batch_size"),
        precision=start.get("precision", "-"),
    )
    ended = read_json(run.exit)
    if not epochs and isinstance(ended, dict) and ended.get("state") == "COMPLETED":
        wall = (_num(ended.get("ended")) or 0.0) - (_num(ended.get("started")) or 0.0)
        epochs = [{**_epoch_row(run.run_id, {"epoch": 1}), "time_s": wall}]
    row["epochs"] = len(epochs)
    return epochs


def _epoch_row(run_id: str, ev: dict) -> dict:
    return {
        "run": run_id,
        "epoch": ev["epoch"],
        "time_s": _num(ev.get("time(s)")),
        "samples": _num(ev.get("samples")),
        "throughput": _num(ev.get("throughput(samples/s)")),
        **{column: _num(ev.get(key)) for key, column in EPOCH_STATS.items()},
        "loss": _num(ev.get("loss")),
        "accuracy": _num(ev.get("accuracy")),
        **dict.fromkeys(QUALITY),
    }


def _settle_state(run: RunDir, row: dict, by_rank: dict[int, list[dict]]) -> None:
    """The run's state, reason and failure class, from its exit record, result and events."""
    ended, result = read_json(run.exit), read_json(run.result)
    if isinstance(ended, dict):
        row.update(started=_num(ended.get("started")), ended=_num(ended.get("ended")))
    row.update(_state(run, ended, result, by_rank, row))
    logged = row["epochs_done"]
    if row["state"] == "COMPLETED" and isinstance(result, dict):
        row.update({k: _num(result.get(k)) for k in QUALITY})
    if row["state"] == "COMPLETED" and row["epochs"] is not None and logged < row["epochs"]:
        row.update(state="INCOMPLETE", reason=f"only {logged} of {row['epochs']} epochs logged")
    if row["state"] in ("FAILED", "TERMINATED", "CANCELLED"):
        row["category"], row["evidence"] = triage.classify(run, row["state"], by_rank)


def _state(run: RunDir, ended, result, by_rank: dict[int, list[dict]], row: dict) -> dict:
    """State and reason: the job's exit record when it wrote one, else what the run left behind."""
    if isinstance(ended, dict) and ended.get("state"):
        if ended["state"] == "COMPLETED":
            return {"state": "COMPLETED"}
        return {"state": ended["state"], "reason": triage.reason(run, by_rank)}
    if isinstance(result, dict) and result.get("status") == "success":
        return {"state": "COMPLETED"}
    if triage.failed_rank(by_rank):
        return {"state": "FAILED", "reason": triage.reason(run, by_rank)}
    if run.cancel.exists():
        return {"state": "CANCELLED", "reason": "cancelled by hpcdl cancel"}
    return {"state": "UNFINISHED", "reason": f"{row['epochs_done']} of {row['epochs']} epochs logged; no exit record"}


def load(paths: list[Path]) -> Loaded:
    """Every run under the given folders, as DataFrames; the scheduler's accounting of their jobs asked
    once per scheduler for all of them (control.usage)."""
    rows, epoch_rows, skipped = [], [], 0
    found = [r for r in find_runs([Path(p) for p in paths]) if not probe.is_probe(r)]  # collect reads probes apart
    shown = found
    if len(found) >= 200 and sys.stderr.isatty():  # thousands of runs: show progress on a terminal
        from tqdm import tqdm

        shown = tqdm(found, desc="reading runs", unit="run", file=sys.stderr)
    for run in shown:
        row, erows, bad = read_run(run)
        rows.append(row)
        epoch_rows += erows
        skipped += bad
    for row, used in zip(rows, control.usage(found, [read_json(r.submission) for r in found]), strict=True):
        row.update({k: (used or {}).get(k) for k in control.USAGE})
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    epochs = pd.DataFrame(epoch_rows, columns=EPOCH_COLUMNS)
    epochs["resource_hours"] = cost.epoch_hours(epochs, runs)
    return Loaded(runs=runs, epochs=epochs, skipped_lines=skipped)
