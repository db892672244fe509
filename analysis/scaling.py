"""Tidy DataFrames -> scaling tables. Pure: DataFrames in, DataFrames out.

Per (strategy, model, dataset, per-worker batch, precision, device kind) over the number of workers p
(a GPU run and a CPU run of the same point, or an fp32 and a bf16 one, are never pooled as repeats):
  time per epoch  mean over the timed epochs (epoch 1 is warm-up and left out when a run has more)
  throughput      global samples / slowest rank's epoch time, mean over the timed epochs
  speedup S       throughput(p) / throughput(baseline)
  efficiency E    S / (p / p_baseline)
  Karp-Flatt e    (1/S - 1/q) / (1 - 1/q), q = p / p_baseline  (the experimentally determined serial fraction)
The baseline is the run with the fewest workers in the group (1 worker when there is one). Repeats of a
point are combined by their median.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from . import cost
from .load import EPOCH_STATS, QUALITY

GROUP = ["strategy", "variant", "model", "dataset", "batch_size", "precision", "device"]
STRONG_GROUP = ["global_batch_size" if c == "batch_size" else c for c in GROUP]  # the global batch is fixed
FIT_COLUMNS = ["batch" if c == "batch_size" else c for c in GROUP] + [
    "law",
    "points",
    "serial_fraction",
    "ci_low",
    "ci_high",
]
COLUMNS = GROUP + [
    "workers",
    "nodes",
    "gpus_per_node",
    "global_batch_size",
    "runs",
    "timed_epochs",
    "time_per_epoch_s",
    *EPOCH_STATS.values(),  # the tasks' own per-epoch stats (catalog.TASKS): time/iteration, tokens/s, ...
    "throughput",
    "throughput_ci_low",
    "throughput_ci_high",
    "speedup",
    "efficiency",
    "karp_flatt",
    *QUALITY,
    *cost.POINT_COLUMNS,  # peak memory, GPU utilisation, resource-hours, nodes, exclusive (cost.py)
    "baseline_workers",
    "baseline_run",
    "scaling",
]


def timed_epochs(epochs: pd.DataFrame, include_warmup: bool = False) -> pd.DataFrame:
    """The epochs that count for timing: all but the first of each run that has more than one."""
    if epochs.empty or include_warmup:
        return epochs
    count = epochs.groupby("run")["epoch"].transform("count")
    first = epochs.groupby("run")["epoch"].transform("min")
    return epochs[(count == 1) | (epochs["epoch"] != first)]


def measured(runs: pd.DataFrame, epochs: pd.DataFrame, include_warmup: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The completed runs that scaling tables are built from (kfold has its own table), and their timed epochs."""
    done = runs[(runs["state"] == "COMPLETED") & (runs["strategy"] != "kfold")]
    return done, timed_epochs(epochs[epochs["run"].isin(done["run"])], include_warmup)


def per_run(runs: pd.DataFrame, epochs: pd.DataFrame, include_warmup: bool = False) -> pd.DataFrame:
    """One row per completed run: its timing over the timed epochs, and its final test accuracy."""
    done, timed = measured(runs, epochs, include_warmup)
    agg = (
        timed.groupby("run")
        .agg(
            timed_epochs=("epoch", "count"),
            time_per_epoch_s=("time_s", "mean"),
            **{c: (c, "mean") for c in EPOCH_STATS.values()},
            throughput=("throughput", "mean"),
        )
        .reset_index()
    )
    table = done.merge(agg, on="run", how="inner")
    return table.assign(**{c: whole(table[c]) for c in ("batch_size", "global_batch_size")})


def whole(values: pd.Series) -> pd.Series:
    """A count as whole numbers, missing where unknown (a script that reported no batch): 64, not 64.0."""
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.astype("Int64") if (numbers.dropna() % 1 == 0).all() else numbers


def karp_flatt(speedup: pd.Series, q: pd.Series) -> pd.Series:
    with np.errstate(divide="ignore", invalid="ignore"):
        e = (1.0 / speedup - 1.0 / q) / (1.0 - 1.0 / q)
    return e.where(q > 1)


def trim_repeats(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Drop the fastest and the slowest run of every point that has 5 or more repeats."""

    def trim(g: pd.DataFrame) -> pd.DataFrame:
        if len(g) < 5:
            return g
        order = g.sort_values("throughput")
        return order.iloc[1:-1]

    return table.groupby(keys, dropna=False, group_keys=False)[table.columns.tolist()].apply(trim)


def t_interval(values: pd.Series) -> tuple[float, float]:
    """95 % Student-t interval of the mean; NaN with fewer than 2 values."""
    from scipy import stats

    v = values.dropna().to_numpy(dtype=float)
    if len(v) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def scaling_table(
    runs: pd.DataFrame, epochs: pd.DataFrame, include_warmup: bool = False, trim: bool = False, scaling: str = "weak"
) -> pd.DataFrame:
    table = per_run(runs, epochs, include_warmup)
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    group = GROUP if scaling == "weak" else STRONG_GROUP
    keys = group + ["workers", "nodes"]
    if trim:
        table = trim_repeats(table, keys)
    points = (
        table.groupby(keys, dropna=False)
        .agg(
            batch_size=("batch_size", "first"),
            gpus_per_node=("gpus_per_node", "first"),
            global_batch_size=("global_batch_size", "first"),
            runs=("run", "count"),
            timed_epochs=("timed_epochs", "sum"),
            time_per_epoch_s=("time_per_epoch_s", "median"),
            **{c: (c, "median") for c in EPOCH_STATS.values()},
            throughput=("throughput", "median"),
            throughput_ci_low=("throughput", lambda v: t_interval(v)[0]),
            throughput_ci_high=("throughput", lambda v: t_interval(v)[1]),
            **{k: (k, "median") for k in QUALITY},
            **cost.point_aggregations(),
            first_run=("run", "first"),
        )
        .drop(columns=[c for c in group if c in ("batch_size", "global_batch_size")], errors="ignore")
        .reset_index()
        .sort_values(keys)
    )
    base = points.loc[
        points.groupby(group, dropna=False)["workers"].idxmin(), group + ["workers", "throughput", "first_run"]
    ]
    base = base.rename(
        columns={"workers": "baseline_workers", "throughput": "baseline_throughput", "first_run": "baseline_run"}
    )
    points = points.merge(base, on=group, how="left")
    points["speedup"] = points["throughput"] / points["baseline_throughput"]
    q = points["workers"] / points["baseline_workers"]
    points["efficiency"] = points["speedup"] / q
    points["karp_flatt"] = karp_flatt(points["speedup"], q)
    points["scaling"] = scaling
    return points[COLUMNS].reset_index(drop=True)


def fit(scaling: pd.DataFrame) -> pd.DataFrame:
    """The serial fraction s per group: Amdahl (strong scaling) or Gustafson (weak), with its 95 % interval."""
    from scipy import optimize, stats

    rows = []
    if scaling.empty:
        return pd.DataFrame(columns=FIT_COLUMNS)
    kind = scaling["scaling"].iloc[0]
    group = STRONG_GROUP if kind == "strong" else GROUP
    for key, g in scaling.groupby(group, dropna=False):
        q = (g["workers"] / g["baseline_workers"]).to_numpy(dtype=float)
        speedup = g["speedup"].to_numpy(dtype=float)
        if len(q) < 2 or not np.isfinite(speedup).all():
            continue
        if kind == "strong":

            def law(x, s):
                return 1.0 / (s + (1.0 - s) / x)
        else:

            def law(x, s):
                return x - s * (x - 1.0)

        with warnings.catch_warnings():  # 2 points fit exactly: no covariance, and no interval is reported
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            (s_hat,), cov = optimize.curve_fit(law, q, speedup, p0=[0.1])
        dof = len(q) - 1
        if dof >= 1 and np.isfinite(cov).all() and len(q) > 2:
            half = stats.t.ppf(0.975, dof) * float(np.sqrt(cov[0, 0]))
            low, high = s_hat - half, s_hat + half
        else:
            low = high = float("nan")
        rows.append([*key, "Amdahl" if kind == "strong" else "Gustafson", len(q), float(s_hat), low, high])
    return pd.DataFrame(rows, columns=FIT_COLUMNS)


BREAKDOWN_TIMES = [
    "time_per_epoch_s",
    "data_s",
    "forward_s",
    "backward_compute_s",
    "communication_s",
    "optimizer_s",
    "other_s",
]
BREAKDOWN_COLUMNS = GROUP + ["workers", "nodes"] + BREAKDOWN_TIMES + ["bound"]


def breakdown(
    runs: pd.DataFrame, epochs: pd.DataFrame, include_warmup: bool = False, scaling: str = "weak"
) -> pd.DataFrame:
    """Where an epoch's time goes, per point (seconds, mean over the ranks, median over repeats).

    data: waiting for the loader; forward; optimizer; backward split into compute and communication, where
    communication is the backward pass's extra time per sample over the group's baseline point (what the
    gradient all-reduce adds, not hidden behind the backward computation); other: the rest of the epoch
    (waiting for the slowest rank, bookkeeping). A point is communication-bound when communication exceeds
    compute (forward + backward compute + optimizer), data-bound when the loader wait does.
    """
    done, timed = measured(runs, epochs, include_warmup)
    timed = timed.dropna(subset=["forward_s", "backward_s", "optimizer_s", "rank_samples", "data_time_s"])
    if timed.empty:
        return pd.DataFrame(columns=BREAKDOWN_COLUMNS)
    cols = ["time_s", "data_time_s", "forward_s", "backward_s", "optimizer_s", "rank_samples"]
    per_run = timed.groupby("run")[cols].mean().reset_index()
    group = GROUP if scaling == "weak" else STRONG_GROUP
    table = done.merge(per_run, on="run")
    points = (
        table.groupby(group + ["workers", "nodes"], dropna=False)[
            cols + (["batch_size"] if "batch_size" not in group else ["global_batch_size"])
        ]
        .median()
        .reset_index()
    )
    points["per_sample"] = points["backward_s"] / points["rank_samples"]
    base = points.loc[points.groupby(group, dropna=False)["workers"].idxmin(), group + ["per_sample"]]
    points = points.merge(base.rename(columns={"per_sample": "base_per_sample"}), on=group)
    comm = ((points["per_sample"] - points["base_per_sample"]) * points["rank_samples"]).clip(lower=0.0)
    points["communication_s"] = comm
    points["backward_compute_s"] = points["backward_s"] - comm
    points["data_s"] = points["data_time_s"]
    points["time_per_epoch_s"] = points["time_s"]
    busy = points[["data_s", "forward_s", "backward_s", "optimizer_s"]].sum(axis=1)
    points["other_s"] = (points["time_s"] - busy).clip(lower=0.0)
    compute = points["forward_s"] + points["backward_compute_s"] + points["optimizer_s"]
    points["bound"] = np.where(
        points["communication_s"] > compute, "communication", np.where(points["data_s"] > compute, "data", "compute")
    )
    return (
        points[BREAKDOWN_COLUMNS]
        .sort_values(["strategy", "variant", "model", "workers", "nodes"])
        .reset_index(drop=True)
    )
