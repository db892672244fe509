"""Tidy DataFrames -> scaling tables. Pure: DataFrames in, DataFrames out.

Per (strategy, model, dataset, per-worker batch, precision) over the number of workers p:
  time per epoch  mean over the timed epochs (epoch 1 is warm-up and left out when a run has more)
  throughput      global samples / slowest rank's epoch time, mean over the timed epochs
  speedup S       throughput(p) / throughput(baseline)
  efficiency E    S / (p / p_baseline)
  Karp-Flatt e    (1/S - 1/q) / (1 - 1/q), q = p / p_baseline  (the experimentally determined serial fraction)
The baseline is the run with the fewest workers in the group (1 worker when there is one). Repeats of a
point are combined by their median.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GROUP = ["strategy", "variant", "model", "dataset", "batch_size", "precision"]
COLUMNS = GROUP + [
    "workers",
    "nodes",
    "gpus_per_node",
    "global_batch_size",
    "runs",
    "timed_epochs",
    "time_per_epoch_s",
    "throughput",
    "speedup",
    "efficiency",
    "karp_flatt",
    "test_accuracy",
    "baseline_workers",
    "baseline_run",
    "device",
]


def timed_epochs(epochs: pd.DataFrame) -> pd.DataFrame:
    """The epochs that count for timing: all but the first of each run that has more than one."""
    if epochs.empty:
        return epochs
    count = epochs.groupby("run")["epoch"].transform("count")
    first = epochs.groupby("run")["epoch"].transform("min")
    return epochs[(count == 1) | (epochs["epoch"] != first)]


def per_run(runs: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """One row per completed run: its timing over the timed epochs, and its final test accuracy."""
    done = runs[(runs["state"] == "COMPLETED") & (runs["strategy"] != "kfold")]  # kfold has its own table
    timed = timed_epochs(epochs[epochs["run"].isin(done["run"])])
    agg = (
        timed.groupby("run")
        .agg(timed_epochs=("epoch", "count"), time_per_epoch_s=("time_s", "mean"), throughput=("throughput", "mean"))
        .reset_index()
    )
    return done.merge(agg, on="run", how="inner")


def karp_flatt(speedup: pd.Series, q: pd.Series) -> pd.Series:
    with np.errstate(divide="ignore", invalid="ignore"):
        e = (1.0 / speedup - 1.0 / q) / (1.0 - 1.0 / q)
    return e.where(q > 1)


def scaling_table(runs: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    table = per_run(runs, epochs)
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    points = (
        table.groupby(GROUP + ["workers", "nodes"], dropna=False)
        .agg(
            gpus_per_node=("gpus_per_node", "first"),
            global_batch_size=("global_batch_size", "first"),
            runs=("run", "count"),
            timed_epochs=("timed_epochs", "sum"),
            time_per_epoch_s=("time_per_epoch_s", "median"),
            throughput=("throughput", "median"),
            test_accuracy=("test_accuracy", "median"),
            device=("device", "first"),
            first_run=("run", "first"),
        )
        .reset_index()
        .sort_values(GROUP + ["workers", "nodes"])
    )
    base = points.loc[
        points.groupby(GROUP, dropna=False)["workers"].idxmin(), GROUP + ["workers", "throughput", "first_run"]
    ]
    base = base.rename(
        columns={"workers": "baseline_workers", "throughput": "baseline_throughput", "first_run": "baseline_run"}
    )
    points = points.merge(base, on=GROUP, how="left")
    points["speedup"] = points["throughput"] / points["baseline_throughput"]
    q = points["workers"] / points["baseline_workers"]
    points["efficiency"] = points["speedup"] / q
    points["karp_flatt"] = karp_flatt(points["speedup"], q)
    return points[COLUMNS].reset_index(drop=True)
