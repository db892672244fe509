"""Scaling DataFrames -> seaborn figures. Pure: a DataFrame in, matplotlib Figures out."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")
IDEAL_NOTE = "dotted: ideal, from each series' own baseline"


def _label(df: pd.DataFrame, strategy: bool = True) -> pd.Series:
    """A series' name: strategy / model / bs N, then its variant, precision and device where the data has them."""
    label = df["model"] + " / bs " + df["batch_size"].astype("string").fillna("-")
    if strategy:
        label = df["strategy"] + " / " + label
    for column in ("variant", "precision", "device"):
        if column in df:
            values = df[column].astype("string").fillna("-")
            label = label + (" / " + values).where(values != "-", "")
    return label


def _cpu_note(df: pd.DataFrame) -> str:
    return " (CPU: workers are processes)" if "device" in df and (df["device"] == "cpu").all() else ""


def _ideal_lines(ax: plt.Axes, df: pd.DataFrame, colors: dict[str, tuple]) -> None:
    """Per series, speedup = workers / baseline workers from its own baseline to its largest point."""
    for name, part in df.groupby("series", sort=False):
        base, top = float(part["baseline_workers"].iloc[0]), float(part["workers"].max())
        if top > base:
            ax.plot([base, top], [1.0, top / base], linestyle=":", linewidth=1.3, color=colors[name], alpha=0.8)


def _series_axes(ax: plt.Axes, df: pd.DataFrame, y: str) -> dict[str, tuple]:
    """Every series with its own colour, marker and line style; points sharing a worker count are dodged
    sideways a little so that none hides another (a one-point series is its marker)."""
    names = list(dict.fromkeys(df.sort_values(["strategy", "workers"], kind="stable")["series"]))
    palette = sns.color_palette("tab10" if len(names) <= 10 else "tab20", len(names))
    workers = sorted(df["workers"].unique())
    span = (workers[-1] - workers[0]) or 1
    colors = {}
    for i, name in enumerate(names):
        part = df[df["series"] == name].sort_values("workers")
        shift = (i - (len(names) - 1) / 2) * 0.02 * span if len(names) > 1 else 0.0
        colors[name] = palette[i]
        ax.plot(
            part["workers"] + shift,
            part[y],
            marker=MARKERS[i % len(MARKERS)],
            linestyle=LINESTYLES[(i // len(MARKERS)) % len(LINESTYLES)],
            color=palette[i],
            markersize=7,
            markeredgecolor="white",
            markeredgewidth=0.8,
            label=name + (f" ({int(part['workers'].iloc[0])} worker(s) only)" if len(part) == 1 else ""),
        )
    ax.set_xticks(workers)
    return colors


def _legend_outside(fig: plt.Figure, ax: plt.Axes, extra: list | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    for handle, label in extra or []:
        handles.append(handle)
        labels.append(label)
    fig.legend(handles, labels, loc="outside right upper", fontsize="small", frameon=False)


def _measured(scaling: pd.DataFrame) -> pd.DataFrame:
    """The points with a throughput (a script that reported no epochs has only its wall time)."""
    return scaling[scaling["throughput"].notna()]


def throughput_figure(scaling: pd.DataFrame) -> plt.Figure:
    df = _measured(scaling).assign(series=_label(_measured(scaling)))
    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    _series_axes(ax, df, "throughput")
    ax.set(xlabel="workers" + _cpu_note(df), ylabel="throughput (samples/s)", title="Throughput vs workers")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _legend_outside(fig, ax)
    return fig


def speedup_figure(scaling: pd.DataFrame) -> plt.Figure:
    df = _measured(scaling).assign(series=_label(_measured(scaling)))
    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    colors = _series_axes(ax, df, "speedup")
    _ideal_lines(ax, df, colors)
    ax.set(xlabel="workers" + _cpu_note(df), ylabel="speedup vs baseline", title="Speedup vs workers")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _legend_outside(fig, ax, [(plt.Line2D([], [], linestyle=":", color="grey"), IDEAL_NOTE)])
    return fig


def _faceted(scaling: pd.DataFrame, y: str, ylabel: str, title: str, ideal: str | None = None) -> plt.Figure:
    """One panel per strategy (models/variants/batches as colours); ideal: "speedup" draws each series'
    workers / baseline workers, "efficiency" 1."""
    df = scaling.assign(series=_label(scaling, strategy=False))
    grid = sns.relplot(
        data=df,
        x="workers",
        y=y,
        hue="series",
        style="series",
        col="strategy",
        kind="line",
        markers=True,
        dashes=False,
        markersize=8,
        col_wrap=min(3, df["strategy"].nunique()),
        height=3,
        aspect=1.2,
        facet_kws={"sharey": False, "sharex": False},
    )
    names = list(dict.fromkeys(df["series"]))
    colors = dict(zip(names, sns.color_palette(n_colors=len(names)), strict=True))
    for strategy, ax in grid.axes_dict.items():
        part = df[df["strategy"] == strategy]
        if ideal == "speedup":
            _ideal_lines(ax, part, colors)
        elif ideal == "efficiency":
            ax.axhline(1.0, linestyle=":", color="grey")
        ax.set_xticks(sorted(part["workers"].unique()))
        ax.set_ylim(bottom=0)
    grid.set_axis_labels("workers" + _cpu_note(df), ylabel)
    grid.figure.suptitle(title + (" (dotted: ideal)" if ideal else ""), y=1.02)
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
        if _measured(scaling).empty:
            return {}
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
    if "test_map" in scaling and scaling["test_map"].notna().any():  # detectors: mAP where accuracy is
        out["map"] = _faceted(scaling, "test_map", "COCO mAP (AP@[.5:.95])", "mAP vs workers")
        out["time_per_iteration"] = _faceted(
            scaling, "time_per_iteration_s", "seconds per iteration", "Time per iteration"
        )
    if breakdown is not None and not breakdown.empty:
        out["breakdown"] = breakdown_figure(breakdown)
    return out
