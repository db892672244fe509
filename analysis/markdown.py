"""The report's Markdown: how a value is written (fmt), a table (table), and the sections past the
scaling table (serial-fraction fits, time breakdown, k-fold, network, failures). collect.to_markdown
puts them together; the HTML page (page.py) writes the same values the same way."""

from __future__ import annotations

import math

import pandas as pd

from hpc_dl import catalog

from . import load as load_mod
from . import network as network_mod
from . import scaling as scaling_mod

# one decimal: rates (samples/s, and the tasks' own such as tokens/s), memory and utilisation
RATES = {"throughput", *(m.name for m in catalog.epoch_metrics() if m.unit.endswith("/s"))}
RATES |= {"peak_memory_mib", "gpu_util_mean"}
# three decimals: ratios and accuracies, and times in seconds
_THREE_DECIMALS = {
    "speedup",
    "efficiency",
    "karp_flatt",
    *(c for c in load_mod.TASK_COLUMNS if c not in RATES),
    "accuracy_mean",
    "accuracy_std",
    "serial_fraction",
    "serial_s",
    "wall_s",
    *scaling_mod.BREAKDOWN_TIMES,
}


def fmt(value, column: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column == "serial_fraction_ci":
        return "-" if any(math.isnan(v) for v in value) else f"{value[0]:.3f} to {value[1]:.3f}"
    if column in _THREE_DECIMALS:
        return f"{value:.3f}"
    if column == "resource_hours":  # small at this scale: three significant digits
        return f"{value:.3g}"
    if column in RATES:
        return f"{value:.1f}"
    if column == "throughput_ci":
        return "-" if any(math.isnan(v) for v in value) else f"{value[0]:.1f}-{value[1]:.1f}"
    return str(value)


def table(df: pd.DataFrame, headers: dict[str, str]) -> str:
    from tabulate import tabulate

    rows = [[fmt(v, c) for c, v in zip(headers, rec, strict=True)] for rec in df[list(headers)].itertuples(index=False)]
    return tabulate(rows, headers=list(headers.values()), tablefmt="github", disable_numparse=True)


FIT_HEADERS = {
    "strategy": "strategy",
    "variant": "variant",
    "model": "model",
    "batch": "batch",
    "points": "points",
    "serial_fraction": "serial fraction s",
    "serial_fraction_ci": "95% CI",
}


def fits_section(fits: pd.DataFrame | None) -> list[str]:
    if fits is None or fits.empty:
        return []
    law = fits["law"].iloc[0]
    formula = "S = 1 / (s + (1 - s) / q)" if law == "Amdahl" else "S = q - s (q - 1)"
    shown = fits.assign(serial_fraction_ci=list(zip(fits["ci_low"], fits["ci_high"], strict=True)))
    return [
        "",
        f"## Serial fraction ({law}'s law, {formula}, least squares)",
        "",
        table(shown, FIT_HEADERS),
        "",
        "- The interval needs 3 or more points (2 fit exactly).",
    ]


KFOLD_HEADERS = {
    "model": "model",
    "scheduler": "scheduler",
    "folds": "folds",
    "accuracy_mean": "accuracy (mean)",
    "accuracy_std": "accuracy (std)",
    "serial_s": "one after another (s)",
}


def kfold_section(k: pd.DataFrame) -> list[str]:
    return [
        "",
        "## K-fold cross-validation",
        "",
        table(k, KFOLD_HEADERS),
        "",
        f"- Held-out accuracy of each fold, mean and standard deviation over the folds. The whole "
        f"study took {fmt(k['wall_s'].iloc[0], 'wall_s')} s of wall time against "
        f"{fmt(k['serial_s'].sum(), 'serial_s')} s one after another: {k['speedup'].iloc[0]:.2f}x.",
    ]


def probe_section(probes: pd.DataFrame | None) -> list[str]:
    """The network the probes measured (hpcdl probe; hpcdl plan uses it)."""
    if probes is None or probes.empty:
        return []
    shown = network_mod.probe_summary(probes).round({"latency_us": 1, "busbw_gbps": 3})
    return ["", "## Network (hpcdl probe)", "", table(shown, network_mod.SUMMARY_HEADERS)]


FAILURE_HEADERS = {
    "run": "run",
    "strategy": "strategy",
    "workers": "workers",
    "state": "state",
    "category": "class",
    "reason": "reason",
}


def failures_section(bad: pd.DataFrame) -> list[str]:
    """The runs that did not complete: counts by class, a row each, and the log line behind each class."""
    if bad.empty:
        return []
    lines = ["", "## Runs that did not complete", "", failure_classes(bad), ""]
    lines.append(table(bad, FAILURE_HEADERS))
    evidence = bad[bad["evidence"].notna()]
    if not evidence.empty:
        lines += ["", "The line that shows each class:", ""]
        lines += [f"- {r.run} ({r.category}): `{r.evidence}`" for r in evidence.itertuples()]
    return lines


def failure_classes(bad: pd.DataFrame) -> str:
    """How many runs failed in each class (a run without a class counts under its state)."""
    counts = bad["category"].fillna(bad["state"].str.lower()).value_counts()
    return "By class: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + "."


# the breakdown's columns less those that name the group (the table is per point), labelled without units
BREAKDOWN_HEADERS = {
    c: {"time_per_epoch_s": "epoch", "backward_compute_s": "backward"}.get(c, c.removesuffix("_s"))
    for c in scaling_mod.BREAKDOWN_COLUMNS
    if c not in ("dataset", "batch_size", "precision", "device")
}


def breakdown_markdown(b: pd.DataFrame | None) -> list[str]:
    if b is None or b.empty:
        return []
    lines = ["", "## Where the time goes (seconds per epoch, mean over ranks)", "", table(b, BREAKDOWN_HEADERS), ""]
    lines.append(
        "- communication: the backward pass's extra time per sample over the baseline point (the gradient "
        "all-reduce that the backward computation does not hide); other: waiting for the slowest rank and "
        "bookkeeping. Timed with the host clock on CPU workers and with CUDA events on GPUs; strategies with "
        "their own step (pipeline) are not split."
    )
    bound = b[b["bound"] != "compute"]
    for r in bound.itertuples():
        lines.append(f"- {r.strategy} {r.model}: {r.bound}-bound at {r.workers} worker(s) on {r.nodes} node(s).")
    return lines
