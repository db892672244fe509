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


def _faceted(scaling: pd.DataFrame, y: str, ylabel: str, title: str, ideal: str | None = None) -> plt.Figure:
    """One panel per strategy (models/variants/batches as colours); ideal: "speedup" draws q, "efficiency" 1."""
    df = scaling.assign(
        series=scaling["model"] + " / " + scaling["variant"] + " / bs " + scaling["batch_size"].astype(str),
        ideal=scaling["workers"] / scaling["baseline_workers"],
    )
    grid = sns.relplot(
        data=df,
        x="workers",
        y=y,
        hue="series",
        col="strategy",
        kind="line",
        marker="o",
        col_wrap=min(3, df["strategy"].nunique()),
        height=3,
        aspect=1.2,
        facet_kws={"sharey": False, "sharex": False},
    )
    for strategy, ax in grid.axes_dict.items():
        part = df[df["strategy"] == strategy].sort_values("workers")
        if ideal == "speedup":
            ax.plot(part["workers"], part["ideal"], linestyle="--", color="grey")
        elif ideal == "efficiency":
            ax.axhline(1.0, linestyle="--", color="grey")
        ax.set_xticks(sorted(part["workers"].unique()))
        ax.set_ylim(bottom=0)
    grid.set_axis_labels("workers" + _cpu_note(df), ylabel)
    grid.figure.suptitle(title + (" (dashed: ideal)" if ideal else ""), y=1.02)
    return grid.figure


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
    """throughput and speedup (what collect writes); with all_figures, one panel per strategy for throughput,
    speedup, efficiency, time per epoch and accuracy, and the time breakdown (what report shows)."""
    if scaling.empty:
        return {}
    if not all_figures:
        return {"throughput": throughput_figure(scaling), "speedup": speedup_figure(scaling)}
    out = {
        "throughput": _faceted(scaling, "throughput", "samples/s", "Throughput vs workers"),
        "speedup": _faceted(scaling, "speedup", "speedup vs baseline", "Speedup vs workers", ideal="speedup"),
        "efficiency": _faceted(
            scaling, "efficiency", "parallel efficiency", "Efficiency vs workers", ideal="efficiency"
        ),
        "time_per_epoch": _faceted(scaling, "time_per_epoch_s", "seconds per epoch", "Time per epoch"),
        "accuracy": _faceted(scaling, "test_accuracy", "test accuracy", "Accuracy vs workers"),
    }
    if breakdown is not None and not breakdown.empty:
        out["breakdown"] = breakdown_figure(breakdown)
    return out
