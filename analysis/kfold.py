"""K-fold runs -> accuracy per model and schedule, and the wall time against one-after-another. Pure."""

from __future__ import annotations

import pandas as pd

COLUMNS = ["model", "scheduler", "folds", "accuracy_mean", "accuracy_std", "serial_s", "wall_s", "speedup"]


def kfold_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (model, scheduler): mean and std of the held-out accuracy over the completed folds; serial_s is the
    sum of the folds' run times (running them one after another), wall_s the first start to the last end of
    the whole study (every model and schedule), and speedup serial_s / wall_s of the whole study."""
    k = runs[(runs["strategy"] == "kfold") & (runs["state"] == "COMPLETED")].copy()
    if k.empty:
        return pd.DataFrame(columns=COLUMNS)
    k["scheduler"] = k["scheduler"].fillna("none")
    k["duration"] = k["ended"] - k["started"]
    table = (
        k.groupby(["model", "scheduler"])
        .agg(
            folds=("fold", "count"),
            accuracy_mean=("test_accuracy", "mean"),
            accuracy_std=("test_accuracy", "std"),
            serial_s=("duration", "sum"),
        )
        .reset_index()
    )
    wall = k["ended"].max() - k["started"].min()
    table["wall_s"] = wall
    table["speedup"] = k["duration"].sum() / wall if wall > 0 else float("nan")
    return table[COLUMNS]
