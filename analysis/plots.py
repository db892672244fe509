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


def figures(scaling: pd.DataFrame) -> dict[str, plt.Figure]:
    if scaling.empty:
        return {}
    return {"throughput": throughput_figure(scaling), "speedup": speedup_figure(scaling)}
