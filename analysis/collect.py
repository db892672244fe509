"""`hpcdl collect`: run folders -> tidy tables, a scaling table, Markdown, CSV and PNG files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hpc_dl import catalog
from hpc_dl import probe as probe_mod
from hpc_dl.errors import CollectError
from hpc_dl.runs import write_atomic

from . import kfold as kfold_mod
from . import load as load_mod
from . import network as network_mod
from . import scaling as scaling_mod

# the tasks' columns come from catalog.TASKS: their per-epoch stats after time/epoch, the first task's
# quality before the device, the other tasks' after it; shown only where a run fills them (shown_headers)
_FIRST, *_OTHERS = catalog.TASKS.values()
SCALING_HEADERS = {
    "strategy": "strategy",
    "variant": "variant",
    "model": "model",
    "dataset": "dataset",
    "batch_size": "batch/worker",
    "precision": "precision",
    "workers": "workers",
    "nodes": "nodes",
    "runs": "runs",
    "time_per_epoch_s": "time/epoch (s)",
    **{m.name: m.header for m in catalog.epoch_metrics()},
    "throughput": "samples/s",
    "throughput_ci": "95% CI",
    "speedup": "speedup",
    "efficiency": "efficiency",
    "karp_flatt": "Karp-Flatt e",
    **{m.name: m.header for m in _FIRST.metrics},
    "device": "device",  # the device kind (cpu, cuda): part of the point, never pooled across
    **{m.name: m.header for t in _OTHERS for m in t.metrics},
    # what the point measured and held (analysis/cost.py); shown where a run recorded it
    "peak_memory_mib": "peak memory (MiB)",
    "gpu_util_mean": "GPU util (%)",
    "resource": "resource",
    "resource_hours": "resource-h",
}
MEASURED = ("peak_memory_mib", "gpu_util_mean", "resource", "resource_hours")


@dataclass
class Report:
    runs: pd.DataFrame
    epochs: pd.DataFrame
    scaling: pd.DataFrame
    skipped_lines: int
    kfold: pd.DataFrame | None = None
    fits: pd.DataFrame | None = None
    include_warmup: bool = False
    trim: bool = False
    breakdown: pd.DataFrame | None = None
    probes: pd.DataFrame | None = None  # the probe records' measurements (hpcdl probe), one row each

    @property
    def not_completed(self) -> pd.DataFrame:
        return self.runs[self.runs["state"] != "COMPLETED"]

    @property
    def markdown(self) -> str:
        return to_markdown(self)


def collect(paths: list[Path], include_warmup: bool = False, trim: bool = False, scaling: str = "weak") -> Report:
    for p in paths:
        if not Path(p).exists():
            raise CollectError(f"no such folder: {p}")
    loaded = load_mod.load(paths)
    if loaded.runs.empty:
        raise CollectError(f"no runs under {', '.join(str(p) for p in paths)} (a run folder holds spec.json)")
    if scaling not in ("weak", "strong"):
        raise CollectError(f"invalid scaling {scaling!r} (choose from weak, strong)")
    table = scaling_mod.scaling_table(loaded.runs, loaded.epochs, include_warmup, trim, scaling)
    return Report(
        runs=loaded.runs,
        epochs=loaded.epochs,
        scaling=table,
        fits=scaling_mod.fit(table),
        skipped_lines=loaded.skipped_lines,
        kfold=kfold_mod.kfold_table(loaded.runs),
        include_warmup=include_warmup,
        trim=trim,
        breakdown=scaling_mod.breakdown(loaded.runs, loaded.epochs, include_warmup, scaling),
        probes=network_mod.probe_table(probe_mod.find(paths)),
    )


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


def _fmt(value, column: str) -> str:
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


def _table(df: pd.DataFrame, headers: dict[str, str]) -> str:
    from tabulate import tabulate

    rows = [
        [_fmt(v, c) for c, v in zip(headers, rec, strict=True)] for rec in df[list(headers)].itertuples(index=False)
    ]
    return tabulate(rows, headers=list(headers.values()), tablefmt="github", disable_numparse=True)


def to_markdown(report: Report, summary: list[str] | None = None) -> str:
    """The report as Markdown; `summary`: the verdicts' lines (hpcdl report's), right after the run count."""
    lines = ["# Scaling report", ""]
    n_done = int((report.runs["state"] == "COMPLETED").sum())
    lines.append(f"{len(report.runs)} run(s) found, {n_done} completed.")
    if summary:
        lines += ["", "## Summary", *summary]
    has_kfold = report.kfold is not None and not report.kfold.empty
    if not report.scaling.empty:
        lines += _scaling_section(report)
    elif not has_kfold:
        lines += ["", "No completed run to build a scaling table from."]
    if has_kfold:
        lines += _kfold_section(report.kfold)
    lines += _probe_section(report.probes)
    lines += _failures_section(report.not_completed)
    if report.skipped_lines:
        lines += ["", f"Skipped {report.skipped_lines} corrupt or truncated log line(s)."]
    return "\n".join(lines) + "\n"


def _scaling_section(report: Report) -> list[str]:
    """The scaling table, how it was measured, the serial-fraction fits and the time breakdown."""
    s = report.scaling
    shown = s.assign(throughput_ci=list(zip(s["throughput_ci_low"], s["throughput_ci_high"], strict=True)))
    lines = ["", _table(shown, shown_headers(s)), "", *scaling_notes(report)]
    lines += _fits_section(report.fits)
    lines += breakdown_markdown(report.breakdown)
    return lines


def scaling_notes(report: Report) -> list[str]:
    """The bullets under the scaling table: each group's baseline, how it was measured, the runs' notes."""
    s = report.scaling
    lines = [
        "- Baseline: in each group, the point with the fewest workers: "
        + "; ".join(
            f"{r.strategy}/{r.model}/bs {_fmt(r.batch_size, 'batch_size')}{_kind(r)}: "
            f"{r.baseline_workers} worker(s), run {r.baseline_run}"
            for r in s.drop_duplicates(scaling_mod.GROUP).itertuples()
        )
    ]
    lines += _method_notes(report)
    return lines + [f"- {note}." for note in sorted(set(report.runs["note"].dropna()))]


def _kind(point) -> str:
    """A point's precision and device kind, where they are not the CPU study's fp32 and cpu."""
    return "".join(f"/{v}" for v in (point.precision, point.device) if v not in ("fp32", "cpu", "-") and pd.notna(v))


def shown_headers(table: pd.DataFrame) -> dict[str, str]:
    """SCALING_HEADERS less the tasks' columns no row fills; where no row has any quality at all, the first
    task's quality column stays (a table of runs that reported none still shows that it is empty)."""
    empty = {c for c in load_mod.TASK_COLUMNS if table[c].isna().all()}
    if empty.issuperset(load_mod.QUALITY):
        empty -= {m.name for m in _FIRST.metrics}
    empty |= {c for c in MEASURED if table[c].isna().all()}
    return {c: h for c, h in SCALING_HEADERS.items() if c not in empty}


def _method_notes(report: Report) -> list[str]:
    """What speedup, throughput and Karp-Flatt mean here, with the options that changed them."""
    s = report.scaling
    if s["scaling"].iloc[0] == "strong":
        kind = (
            "- Strong scaling: the global batch is fixed (each point's per-worker batch is global / workers); "
            "speedup is the gain in time per epoch."
        )
    else:
        kind = (
            "- Weak scaling: the per-worker batch is fixed (the global batch grows with the workers); every "
            "epoch covers the same data, so speedup is the gain in time per epoch (samples/s ratio)."
        )
    warmup = (
        "every epoch is timed (--include-warmup)"
        if report.include_warmup
        else "epoch 1 is warm-up and not timed when a run has more than one"
    )
    repeats = "median; 95% CI: Student-t interval of the mean of the repeats" + (
        "; the fastest and slowest of 5 or more repeats dropped (--trim)" if report.trim else ""
    )
    lines = [
        kind,
        "- Throughput: global samples / the slowest rank's epoch time, mean over the timed epochs; "
        f"{warmup}. Repeats: {repeats}.",
        "- Karp-Flatt e = (1/S - 1/q) / (1 - 1/q), q = workers / baseline workers.",
    ]
    if (s["device"] == "cpu").any():
        lines.append("- CPU-only: no GPU was found; each worker is a CPU process (gloo), not a GPU.")
    return lines


FIT_HEADERS = {
    "strategy": "strategy",
    "variant": "variant",
    "model": "model",
    "batch": "batch",
    "points": "points",
    "serial_fraction": "serial fraction s",
    "serial_fraction_ci": "95% CI",
}


def _fits_section(fits: pd.DataFrame | None) -> list[str]:
    if fits is None or fits.empty:
        return []
    law = fits["law"].iloc[0]
    formula = "S = 1 / (s + (1 - s) / q)" if law == "Amdahl" else "S = q - s (q - 1)"
    shown = fits.assign(serial_fraction_ci=list(zip(fits["ci_low"], fits["ci_high"], strict=True)))
    return [
        "",
        f"## Serial fraction ({law}'s law, {formula}, least squares)",
        "",
        _table(shown, FIT_HEADERS),
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


def _kfold_section(k: pd.DataFrame) -> list[str]:
    return [
        "",
        "## K-fold cross-validation",
        "",
        _table(k, KFOLD_HEADERS),
        "",
        f"- Held-out accuracy of each fold, mean and standard deviation over the folds. The whole "
        f"study took {_fmt(k['wall_s'].iloc[0], 'wall_s')} s of wall time against "
        f"{_fmt(k['serial_s'].sum(), 'serial_s')} s one after another: {k['speedup'].iloc[0]:.2f}x.",
    ]


def _probe_section(probes: pd.DataFrame | None) -> list[str]:
    """The network the probes measured (hpcdl probe; hpcdl plan uses it)."""
    if probes is None or probes.empty:
        return []
    shown = network_mod.probe_summary(probes).round({"latency_us": 1, "busbw_gbps": 3})
    return ["", "## Network (hpcdl probe)", "", _table(shown, network_mod.SUMMARY_HEADERS)]


FAILURE_HEADERS = {
    "run": "run",
    "strategy": "strategy",
    "workers": "workers",
    "state": "state",
    "category": "class",
    "reason": "reason",
}


def _failures_section(bad: pd.DataFrame) -> list[str]:
    """The runs that did not complete: counts by class, a row each, and the log line behind each class."""
    if bad.empty:
        return []
    lines = ["", "## Runs that did not complete", "", failure_classes(bad), ""]
    lines.append(_table(bad, FAILURE_HEADERS))
    evidence = bad[bad["evidence"].notna()]
    if not evidence.empty:
        lines += ["", "The line that shows each class:", ""]
        lines += [f"- {r.run} ({r.category}): `{r.evidence}`" for r in evidence.itertuples()]
    return lines


def failure_classes(bad: pd.DataFrame) -> str:
    """How many runs failed in each class (a run without a class counts under its state)."""
    counts = bad["category"].fillna(bad["state"].str.lower()).value_counts()
    return "By class: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + "."


def records(df: pd.DataFrame) -> list[dict]:
    """A DataFrame as JSON-ready records (NaN -> null)."""
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in df.astype(object).to_dict(orient="records")
    ]


# the breakdown's columns less those that name the group (the table is per point), labelled without units
BREAKDOWN_HEADERS = {
    c: {"time_per_epoch_s": "epoch", "backward_compute_s": "backward"}.get(c, c.removesuffix("_s"))
    for c in scaling_mod.BREAKDOWN_COLUMNS
    if c not in ("dataset", "batch_size", "precision", "device")
}


def breakdown_markdown(b: pd.DataFrame | None) -> list[str]:
    if b is None or b.empty:
        return []
    lines = ["", "## Where the time goes (seconds per epoch, mean over ranks)", "", _table(b, BREAKDOWN_HEADERS), ""]
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


def to_json(report: Report) -> dict:
    fits = report.fits if report.fits is not None else pd.DataFrame()
    return {
        "scaling": records(report.scaling),
        "fits": records(fits),
        "runs": records(report.runs),
        "skipped_lines": report.skipped_lines,
    }


def write(report: Report, out: Path, plots: bool = True) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        out / "scaling.csv": report.scaling.to_csv(index=False),
        out / "runs.csv": report.runs.to_csv(index=False),
        out / "epochs.csv": report.epochs.to_csv(index=False),
        **(
            {out / "breakdown.csv": report.breakdown.to_csv(index=False)}
            if report.breakdown is not None and not report.breakdown.empty
            else {}
        ),
        **(
            {out / "probe.csv": report.probes.to_csv(index=False)}
            if report.probes is not None and len(report.probes)
            else {}
        ),
        **(
            {out / "kfold.csv": report.kfold.to_csv(index=False)}
            if report.kfold is not None and not report.kfold.empty
            else {}
        ),
        out / "scaling.md": report.markdown,
    }
    for path, text in files.items():
        write_atomic(path, text)
    written = list(files)
    if plots:
        import matplotlib.pyplot as plt

        from . import plots as plots_mod

        for name, fig in plots_mod.figures(report.scaling).items():
            path = out / f"{name}.png"
            tmp = out / f".{name}.png.tmp"
            fig.savefig(tmp, dpi=120, format="png")
            plt.close(fig)
            tmp.replace(path)
            written.append(path)
    return written
