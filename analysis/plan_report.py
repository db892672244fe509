"""A plan's costs, verdicts, tables and figure: what `hpcdl plan` prints and writes, and the band the
report page shows (measured points and predictions on the same axes)."""

from __future__ import annotations

import math

import pandas as pd

from . import plan_terms
from .network import WORDS, Network
from .scaling import GROUP

PLAN_HEADERS = {
    "workers": "workers",
    "nodes": "nodes",
    "measured_raw": "measured samples/s",
    "measured": "less CPU wait",
    "throughput": "predicted samples/s",
    "interval": "95% interval",
    "speedup": "speedup",
    "efficiency": "efficiency",
    "step_ms": "step (ms)",
    "communication_ms": "communication (ms)",
    "gpu_hours_epoch": "GPU-h/epoch",
    "gpu_hours": "GPU-h (all epochs)",
    "train": "time (all epochs)",
    "dominant": "dominant term",
}
VALIDATE_HEADERS = {
    "strategy": "strategy",
    "model": "model",
    "workers": "workers",
    "nodes": "nodes",
    "measured_raw": "measured samples/s",
    "measured": "less CPU wait",
    "predicted": "predicted samples/s",
    "interval": "95% interval",
    "error_pct": "error",
    "error_raw_pct": "error vs measured",
}


def costs(plan: pd.DataFrame, samples: pd.Series, epochs: pd.Series) -> pd.DataFrame:
    """Time and GPU-hours per epoch and for all the epochs, at every planned shape (samples and epochs
    per row: the study's, or what the user asked for)."""
    out = plan.copy()
    out["epoch_s"] = samples / out["throughput"]
    out["gpu_hours_epoch"] = out["epoch_s"] * out["workers"] / 3600
    out["epochs"] = epochs
    out["train_s"] = out["epoch_s"] * epochs
    out["train_s_high"] = samples / out["throughput_low"] * epochs
    out["gpu_hours"] = out["gpu_hours_epoch"] * epochs
    return out


def cheapest(plan: pd.DataFrame, target_s: float) -> pd.Series | None:
    """The shape with the fewest GPU-hours whose predicted training time meets the target."""
    fits = plan[plan["train_s"] <= target_s]
    return None if fits.empty else fits.loc[fits["gpu_hours"].idxmin()]


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    minutes = int(round(seconds / 60))
    return f"{seconds:.0f} s" if seconds < 90 else f"{minutes // 60}:{minutes % 60:02d} h"


def verdicts(g: pd.DataFrame, min_efficiency: float, target_s: float | None) -> list[str]:
    """Where efficiency drops below the threshold and why; the cheapest shape that meets the target."""
    g = g.sort_values(["workers", "nodes"])
    below = g[g["efficiency"] < min_efficiency]
    if below.empty:
        top = g.iloc[-1]
        lines = [
            f"efficiency stays at or above {min_efficiency:.2f} up to {top.workers} worker(s) on {top.nodes} node(s)"
        ]
    else:
        r = below.iloc[0]
        lines = [
            f"efficiency falls below {min_efficiency:.2f} at {r.workers} worker(s) on {r.nodes} node(s) "
            f"({r.efficiency:.2f}); the largest term there: {r.dominant}"
        ]
    if target_s is not None:
        best = cheapest(g, target_s)
        within = f"trains {int(g['epochs'].iloc[0])} epoch(s) within {duration(target_s)}"
        if best is None:
            fast = g.loc[g["train_s"].idxmin()]
            lines.append(
                f"no planned shape {within}; the fastest, {fast.workers} worker(s), takes {duration(fast.train_s)}"
            )
        else:
            lines.append(
                f"cheapest shape that {within}: {best.workers} worker(s) on {best.nodes} node(s), "
                f"{duration(best.train_s)} (up to {duration(best.train_s_high)}), {best.gpu_hours:.3g} GPU-hours"
            )
    return lines


def _fmt(value, digits: str = ".1f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, digits)


def ms(seconds: float) -> str:
    value = seconds * 1e3
    return _fmt(value, ".3g" if abs(value) < 1000 else ".0f")


def percent(x) -> str:
    return "-" if pd.isna(x) else f"{x * 100:+.1f} %"


def interval(low, high) -> str:
    """'low-high'; '-' where there is none, or no spread to make one from."""
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (low, high)) or low == high:
        return "-"
    return f"{low:.1f}-{high:.1f}"


def plan_rows(g: pd.DataFrame) -> pd.DataFrame:
    shown = pd.DataFrame(
        {
            "workers": g["workers"].astype(str),
            "nodes": g["nodes"].astype(str),
            "measured": [_fmt(v) for v in g["measured"]],
            "measured_raw": [_fmt(v) for v in g["measured_raw"]],
            "throughput": [_fmt(v) for v in g["throughput"]],
            "interval": [interval(a, b) for a, b in zip(g["throughput_low"], g["throughput_high"], strict=True)],
            "speedup": [_fmt(v, ".2f") for v in g["speedup"]],
            "efficiency": [_fmt(v, ".2f") for v in g["efficiency"]],
            "step_ms": [ms(v) for v in g["step_s"]],
            "communication_ms": [ms(v) for v in g["communication_s"]],
            "gpu_hours_epoch": [_fmt(v, ".3g") for v in g["gpu_hours_epoch"]],
            "gpu_hours": [_fmt(v, ".3g") for v in g["gpu_hours"]],
            "train": [duration(v) for v in g["train_s"]],
            "dominant": g["dominant"],
        }
    )
    return shown


def _table(df: pd.DataFrame, headers: dict[str, str]) -> str:
    from tabulate import tabulate

    return tabulate(
        df[list(headers)].values.tolist(), headers=list(headers.values()), tablefmt="github", disable_numparse=True
    )


def network_lines(net: Network) -> list[str]:
    lines = [f"- Network: {net.source}."]
    for (op, pl), link in sorted(net.links.items()):
        if link.points:
            lines.append(
                f"  - {WORDS[op]} {pl}-node: {link.busbw_gbps:.3g} GB/s bus bandwidth, {link.latency_s * 1e6:.3g} us "
                f"per ring step (fit residual {link.residual:.0%}, {link.points} measurement(s), up to "
                f"{link.max_ranks} ranks)"
            )
    return lines + [f"  - {note}." for note in sorted(net.notes)]


def calibration(g: pd.DataFrame) -> str:
    kappa = g["kappa"].dropna()
    if kappa.empty:
        return "- Calibration: kappa = 1, the network as measured (no runs with and without communication to fit it)."
    return (
        f"- Calibration: kappa = {kappa.iloc[0]:.3g}: the training step pays {kappa.iloc[0]:.3g} x the communication "
        "the network predicts (fitted on the runs with and without communication)."
    )


def label(g: pd.DataFrame) -> str:
    r = g.iloc[0]
    return f"{r.strategy} / {r.model} / bs {r.batch_size} / {r.precision} / {r.device}" + (
        f" / {r.variant}" if r.variant not in ("-", None) else ""
    )


def plan_markdown(title: str, plan: pd.DataFrame, nets: dict, context: list[str], min_eff: float, target_s) -> str:
    lines = [f"# Scaling plan: {title}", "", *context]
    for key, g in plan.groupby(GROUP, dropna=False, sort=False):
        model = plan_terms.MODELS[g.iloc[0]["strategy"]]
        lines += ["", f"## {label(g)}", ""]
        lines += [f"- {line[0].upper() + line[1:]}." for line in verdicts(g, min_eff, target_s)]
        lines.append(f"- Model: {model.formula}.")
        lines.append(calibration(g))
        lines += network_lines(nets[key])
        cpu = " GPU-hours are worker-hours (CPU processes)." if g.iloc[0]["device"] == "cpu" else ""
        lines += ["", _table(plan_rows(g), PLAN_HEADERS), "", f"- Interval: about 95 % (normal).{cpu}"]
    return "\n".join(lines) + "\n"


def validate_markdown(v: pd.DataFrame) -> str:
    shown = v.assign(
        workers=v["workers"].astype(str),
        nodes=v["nodes"].astype(str),
        measured=[_fmt(x) for x in v["measured"]],
        measured_raw=[_fmt(x) for x in v["measured_raw"]],
        predicted=[_fmt(x) for x in v["predicted"]],
        interval=[interval(a, b) for a, b in zip(v["predicted_low"], v["predicted_high"], strict=True)],
        error_pct=[percent(x) for x in v["error"]],
        error_raw_pct=[percent(x) for x in v["error_raw"]],
    )
    lines = ["", "## Leave-one-out check: each measured shape predicted from the others", ""]
    lines += [_table(shown, VALIDATE_HEADERS), ""]
    for _, g in v.groupby(GROUP, dropna=False, sort=False):
        err, raw = g["error"].dropna().abs(), g["error_raw"].dropna().abs()
        what = f"{g.iloc[0]['strategy']} {g.iloc[0]['model']}"
        if err.empty:
            lines.append(f"- {what}: no shape could be predicted from the others.")
        else:
            lines.append(
                f"- {what}: mean absolute error {err.mean():.1%}, largest {err.max():.1%}, over {len(err)} shape(s) "
                f"(against the throughput as measured: {raw.mean():.1%})."
            )
    lines.append(
        "- less CPU wait: the measured throughput without the time the training threads waited, ready, for a CPU "
        "(the kernel's run delay; other processes on the same cores); the model predicts that."
    )
    return "\n".join(lines) + "\n"


def figure(plan: pd.DataFrame):
    """Measured throughput (markers) and the prediction (line, its interval as a band), per group, on one
    pair of axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    groups = list(plan.groupby(GROUP, dropna=False, sort=False))
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    for (_, g), color in zip(groups, sns.color_palette("tab10", len(groups)), strict=False):
        g = g.sort_values("workers").drop_duplicates("workers")
        ax.fill_between(g["workers"], g["throughput_low"], g["throughput_high"], color=color, alpha=0.2)
        ax.plot(g["workers"], g["throughput"], color=color, label=f"{label(g)}: predicted (band: 95 %)")
        seen = g.dropna(subset=["measured"])
        ax.plot(seen["workers"], seen["measured"], "o", color=color, markeredgecolor="white", label="  measured")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(plan["workers"].unique()), labels=[str(w) for w in sorted(plan["workers"].unique())])
    ax.set(xlabel="workers", ylabel="throughput (samples/s)", title="Scaling plan: measured and predicted")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize="small", frameon=False)
    return fig
