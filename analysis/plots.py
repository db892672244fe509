"""Scaling DataFrames -> seaborn figures. Pure: a DataFrame in, matplotlib Figures out."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def _label(df: pd.DataFrame) -> pd.Series:
    return df["strategy"] + " / " + df["model"] + " / bs " + df["batch_size"].astype(str)


def _cpu_note(df: pd.DataFrame) -> str:
    return " (CPU: workers are processes)" if (df["device"] == "cpu").all() else ""


def throughput_figure(scaling: pd.DataFrame) -> plt.Figure:
    df = scaling.assign(series=_label(scaling))
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    sns.lineplot(data=df, x="workers", y="throughput", hue="series", marker="o", ax=ax)
    ax.set(xlabel="workers" + _cpu_note(df), ylabel="throughput (samples/s)", title="Throughput vs workers")
    ax.set_xticks(sorted(df["workers"].unique()))
    ax.set_ylim(bottom=0)
    return fig


def speedup_figure(scaling: pd.DataFrame) -> plt.Figure:
    df = scaling.assign(series=_label(scaling), ideal=scaling["workers"] / scaling["baseline_workers"])
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    sns.lineplot(data=df, x="workers", y="speedup", hue="series", marker="o", ax=ax)
    ideal = df[["workers", "ideal"]].drop_duplicates().sort_values("workers")
    ax.plot(ideal["workers"], ideal["ideal"], linestyle="--", color="grey", label="ideal")
    ax.legend()
    ax.set(xlabel="workers" + _cpu_note(df), ylabel="speedup vs baseline", title="Speedup vs workers")
    ax.set_xticks(sorted(df["workers"].unique()))
    ax.set_ylim(bottom=0)
    return fig


def _per_workers(scaling: pd.DataFrame, y: str, ylabel: str, title: str, ideal: float | None = None) -> plt.Figure:
    df = scaling.assign(series=_label(scaling))
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    sns.lineplot(data=df, x="workers", y=y, hue="series", marker="o", ax=ax)
    if ideal is not None:
        ax.axhline(ideal, linestyle="--", color="grey", label="ideal")
        ax.legend()
    ax.set(xlabel="workers" + _cpu_note(df), ylabel=ylabel, title=title)
    ax.set_xticks(sorted(df["workers"].unique()))
    ax.set_ylim(bottom=0)
    return fig


def breakdown_figure(breakdown: pd.DataFrame) -> plt.Figure:
    parts = ["data_s", "forward_s", "backward_compute_s", "communication_s", "optimizer_s", "other_s"]
    df = breakdown.assign(
        point=breakdown["strategy"]
        + " "
        + breakdown["workers"].astype(str)
        + "w/"
        + breakdown["nodes"].astype(str)
        + "n"
    )
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    bottom = None
    for part, color in zip(parts, sns.color_palette("tab10", len(parts)), strict=True):
        ax.bar(df["point"], df[part], bottom=bottom, label=part.removesuffix("_s").replace("_", " "), color=color)
        bottom = df[part] if bottom is None else bottom + df[part]
    ax.set(ylabel="seconds per epoch", title="Where the time goes")
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize="small")
    return fig


def figures(
    scaling: pd.DataFrame, breakdown: pd.DataFrame | None = None, all_figures: bool = False
) -> dict[str, plt.Figure]:
    """throughput and speedup (what collect writes); with all_figures, also efficiency, time per epoch,
    accuracy and the time breakdown (what report shows)."""
    if scaling.empty:
        return {}
    out = {"throughput": throughput_figure(scaling), "speedup": speedup_figure(scaling)}
    if all_figures:
        out["efficiency"] = _per_workers(scaling, "efficiency", "parallel efficiency", "Efficiency vs workers", 1.0)
        out["time_per_epoch"] = _per_workers(scaling, "time_per_epoch_s", "seconds per epoch", "Time per epoch")
        out["accuracy"] = _per_workers(scaling, "test_accuracy", "test accuracy", "Accuracy vs workers")
        if breakdown is not None and not breakdown.empty:
            out["breakdown"] = breakdown_figure(breakdown)
    return out
