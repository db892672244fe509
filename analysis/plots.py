"""Scaling DataFrames -> seaborn figures. Pure: a DataFrame in, matplotlib Figures out."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from . import summary  # noqa: E402

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


def _values(df: pd.DataFrame, column: str) -> str:
    return ", ".join(dict.fromkeys(df[column].astype("string").fillna("-"))) if column in df else "-"


def _baselines(df: pd.DataFrame) -> str:
    """Which point each series is measured against: the usual count, and the strategies that differ."""
    if "baseline_workers" not in df or df.empty:
        return "-"
    firsts = df.drop_duplicates("strategy").set_index("strategy")["baseline_workers"].astype(int)
    usual = int(firsts.mode().iloc[0])
    others = ", ".join(f"{k}: {v}" for k, v in firsts.items() if v != usual)
    return f"each series' fewest workers, {usual}" + (f" ({others})" if others else "")


def caption(df: pd.DataFrame, baseline: str | None = None) -> str:
    """What every figure says under its axes: the device kinds, the precisions and the baseline."""
    return (
        f"device: {_values(df, 'device')} | precision: {_values(df, 'precision')} | "
        f"baseline: {baseline or _baselines(df)}"
    )


def _caption(fig: plt.Figure, df: pd.DataFrame, baseline: str | None = None) -> None:
    """The caption under the axes: the layout makes room for it (constrained), or below a grid's axes."""
    text = caption(df, baseline)
    if fig.get_constrained_layout():
        fig.supxlabel(text, fontsize="small", color="0.3")
    else:
        fig.text(0.01, -0.02, text, fontsize="small", color="0.3", ha="left", va="top")


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
    _caption(fig, df)
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
    _caption(fig, df)
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
    grid.figure.suptitle(title + " per strategy" + (" (dotted: ideal)" if ideal else ""), y=1.02)
    _caption(grid.figure, df)
    return grid.figure


COMPARISONS = {  # name: (column, y label, title, ideal)
    "compare_throughput": ("throughput", "throughput (samples/s)", "Throughput", None),
    "compare_speedup": ("speedup", "speedup vs baseline", "Speedup", "speedup"),
    "compare_efficiency": ("efficiency", "parallel efficiency", "Efficiency", "efficiency"),
    "peak_memory": (summary.PEAK_MEMORY, "peak memory per rank (MiB)", "Peak memory per rank", None),
}


def comparison_figure(scaling: pd.DataFrame, name: str) -> plt.Figure | None:
    """Every strategy of a comparison group (one model, data set, batch, precision, device) on ONE axis, a
    row of axes per group; None where no point has the column (old runs record no memory)."""
    y, ylabel, title, ideal = COMPARISONS[name]
    df = _measured(scaling)
    if y not in df or df[y].isna().all():
        return None
    parts = [(label, part[part[y].notna()]) for label, _, part in summary.groups(df)]
    parts = [(label, part) for label, part in parts if not part.empty]
    fig, axes = plt.subplots(len(parts), 1, figsize=(10, 4.2 * len(parts)), layout="constrained", squeeze=False)
    for ax, (label, part) in zip(axes[:, 0], parts, strict=True):
        colors = _series_axes(ax, part, y)
        if ideal == "speedup":
            _ideal_lines(ax, part, colors)
        elif ideal == "efficiency":
            ax.axhline(1.0, linestyle=":", color="grey", linewidth=1.3)
        ax.set(xlabel="workers" + _cpu_note(part), ylabel=ylabel, title=f"{title} vs workers: {label}")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if ideal:
            handles.append(plt.Line2D([], [], linestyle=":", color="grey"))
            labels.append(IDEAL_NOTE if ideal == "speedup" else "dotted: ideal (1)")
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    base = f"{summary.baseline_strategy(df)} (the same workers)" if name == "peak_memory" else None
    _caption(fig, df, base)
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
    _caption(fig, df, "communication over each series' fewest-workers point")
    return fig


def figures(
    scaling: pd.DataFrame, breakdown: pd.DataFrame | None = None, all_figures: bool = False
) -> dict[str, plt.Figure]:
    """throughput and speedup (what collect writes); with all_figures (what report shows): the comparisons
    (every strategy of a group on one axis: throughput, speedup, efficiency, and peak memory per rank where
    recorded), then one panel per strategy for throughput, speedup, efficiency, time per epoch and accuracy,
    and the time breakdown."""
    if scaling.empty:
        return {}
    if not all_figures:
        if _measured(scaling).empty:
            return {}
        return {"throughput": throughput_figure(scaling), "speedup": speedup_figure(scaling)}
    compared = {name: comparison_figure(scaling, name) for name in COMPARISONS}
    out = {name: fig for name, fig in compared.items() if fig is not None}
    out |= {
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
