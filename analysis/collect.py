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
from . import markdown as md_mod
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
        lines += md_mod.kfold_section(report.kfold)
    lines += md_mod.probe_section(report.probes)
    lines += md_mod.failures_section(report.not_completed)
    if report.skipped_lines:
        lines += ["", f"Skipped {report.skipped_lines} corrupt or truncated log line(s)."]
    return "\n".join(lines) + "\n"


def _scaling_section(report: Report) -> list[str]:
    """The scaling table, how it was measured, the serial-fraction fits and the time breakdown."""
    s = report.scaling
    shown = s.assign(throughput_ci=list(zip(s["throughput_ci_low"], s["throughput_ci_high"], strict=True)))
    lines = ["", md_mod.table(shown, shown_headers(s)), "", *scaling_notes(report)]
    lines += md_mod.fits_section(report.fits)
    lines += md_mod.breakdown_markdown(report.breakdown)
    return lines


def scaling_notes(report: Report) -> list[str]:
    """The bullets under the scaling table: each group's baseline, how it was measured, the runs' notes."""
    s = report.scaling
    lines = [
        "- Baseline: in each group, the point with the fewest workers: "
        + "; ".join(
            f"{r.strategy}/{r.model}/bs {md_mod.fmt(r.batch_size, 'batch_size')}{_kind(r)}: "
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


def records(df: pd.DataFrame) -> list[dict]:
    """A DataFrame as JSON-ready records (NaN -> null)."""
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in df.astype(object).to_dict(orient="records")
    ]


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
