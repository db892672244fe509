"""`hpcdl collect`: run folders -> tidy tables, a scaling table, Markdown, CSV and PNG files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hpc_dl.errors import CollectError
from hpc_dl.runs import write_atomic

from . import kfold as kfold_mod
from . import load as load_mod
from . import scaling as scaling_mod

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
    "throughput": "samples/s",
    "speedup": "speedup",
    "efficiency": "efficiency",
    "karp_flatt": "Karp-Flatt e",
    "test_accuracy": "test acc",
}


@dataclass
class Report:
    runs: pd.DataFrame
    epochs: pd.DataFrame
    scaling: pd.DataFrame
    skipped_lines: int
    kfold: pd.DataFrame | None = None

    @property
    def not_completed(self) -> pd.DataFrame:
        return self.runs[self.runs["state"] != "COMPLETED"]

    @property
    def markdown(self) -> str:
        return to_markdown(self)


def collect(paths: list[Path]) -> Report:
    for p in paths:
        if not Path(p).exists():
            raise CollectError(f"no such folder: {p}")
    loaded = load_mod.load(paths)
    if loaded.runs.empty:
        raise CollectError(f"no runs under {', '.join(str(p) for p in paths)} (a run folder holds spec.json)")
    scaling = scaling_mod.scaling_table(loaded.runs, loaded.epochs)
    return Report(
        runs=loaded.runs,
        epochs=loaded.epochs,
        scaling=scaling,
        skipped_lines=loaded.skipped_lines,
        kfold=kfold_mod.kfold_table(loaded.runs),
    )


def _fmt(value, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column in ("speedup", "efficiency", "karp_flatt", "test_accuracy", "accuracy_mean", "accuracy_std"):
        return f"{value:.3f}"
    if column == "throughput":
        return f"{value:.1f}"
    if column in ("time_per_epoch_s", "serial_s", "wall_s"):
        return f"{value:.3f}"
    return str(value)


def _table(df: pd.DataFrame, headers: dict[str, str]) -> str:
    from tabulate import tabulate

    rows = [
        [_fmt(v, c) for c, v in zip(headers, rec, strict=True)] for rec in df[list(headers)].itertuples(index=False)
    ]
    return tabulate(rows, headers=list(headers.values()), tablefmt="github", disable_numparse=True)


def to_markdown(report: Report) -> str:
    lines = ["# Scaling report", ""]
    s = report.scaling
    n_done = int((report.runs["state"] == "COMPLETED").sum())
    lines.append(f"{len(report.runs)} run(s) found, {n_done} completed.")
    if not s.empty:
        lines += ["", _table(s, SCALING_HEADERS), ""]
        lines.append(
            "- Baseline: in each group, the point with the fewest workers: "
            + "; ".join(
                f"{r.strategy}/{r.model}/bs {r.batch_size}: {r.baseline_workers} worker(s), run {r.baseline_run}"
                for r in s.drop_duplicates(scaling_mod.GROUP).itertuples()
            )
        )
        lines.append(
            "- Batch size is per worker (the global batch grows with the workers); every epoch covers the "
            "same data, so speedup is the gain in time per epoch (samples/s ratio)."
        )
        lines.append(
            "- Throughput: global samples / the slowest rank's epoch time, mean over the timed epochs; "
            "epoch 1 is warm-up and not timed when a run has more than one. Repeats: median."
        )
        lines.append("- Karp-Flatt e = (1/S - 1/q) / (1 - 1/q), q = workers / baseline workers.")
        if (s["device"] == "cpu").any():
            lines.append("- CPU-only: no GPU was found; each worker is a CPU process (gloo), not a GPU.")
        for note in sorted(set(report.runs["note"].dropna())):
            lines.append(f"- {note}.")
    elif report.kfold is None or report.kfold.empty:
        lines += ["", "No completed run to build a scaling table from."]
    if report.kfold is not None and not report.kfold.empty:
        k = report.kfold
        lines += [
            "",
            "## K-fold cross-validation",
            "",
            _table(
                k,
                {
                    "model": "model",
                    "scheduler": "scheduler",
                    "folds": "folds",
                    "accuracy_mean": "accuracy (mean)",
                    "accuracy_std": "accuracy (std)",
                    "serial_s": "one after another (s)",
                },
            ),
            "",
        ]
        lines.append(
            f"- Held-out accuracy of each fold, mean and standard deviation over the folds. The whole "
            f"study took {_fmt(k['wall_s'].iloc[0], 'wall_s')} s of wall time against "
            f"{_fmt(k['serial_s'].sum(), 'serial_s')} s one after another: {k['speedup'].iloc[0]:.2f}x."
        )
    bad = report.not_completed
    if not bad.empty:
        lines += ["", "## Runs that did not complete", ""]
        lines.append(
            _table(
                bad, {"run": "run", "strategy": "strategy", "workers": "workers", "state": "state", "reason": "reason"}
            )
        )
    if report.skipped_lines:
        lines += ["", f"Skipped {report.skipped_lines} corrupt or truncated log line(s)."]
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> dict:
    def records(df: pd.DataFrame) -> list[dict]:
        return [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in df.astype(object).to_dict(orient="records")
        ]

    return {"scaling": records(report.scaling), "runs": records(report.runs), "skipped_lines": report.skipped_lines}


def write(report: Report, out: Path, plots: bool = True) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        out / "scaling.csv": report.scaling.to_csv(index=False),
        out / "runs.csv": report.runs.to_csv(index=False),
        out / "epochs.csv": report.epochs.to_csv(index=False),
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
