"""Expected performance and regressions: a references file checked against a scaling table, and two
studies side by side. Pure: data and DataFrames in, DataFrames out.

A references file (YAML) is a list of expected values, ReFrame-style `(target, lower, upper, unit)`:

    references:
      - strategy: ddp          # the key: strategy, model, workers (required); variant, dataset,
        model: resnet18        #   batch_size, precision, nodes (optional, narrow the match)
        workers: 2
        metric: throughput     # throughput | time_per_epoch_s | speedup | efficiency | test_accuracy
        target: 265.0
        lower: -0.10           # allowed relative deviation below the target (-0.10 = 10 % lower is fine)
        upper: null            # above (null: no bound)
        unit: samples/s        # optional, shown in the output

A point passes when target * (1 + lower) <= value <= target * (1 + upper). A reference that matches no
point fails as "missing": a regression check must not pass because a run was not there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hpc_dl.errors import UsageError

METRICS = ("throughput", "time_per_epoch_s", "speedup", "efficiency", "test_accuracy")
KEYS = ("strategy", "model", "workers")
OPTIONAL_KEYS = ("variant", "dataset", "batch_size", "precision", "nodes")
FIELDS = set(KEYS) | set(OPTIONAL_KEYS) | {"metric", "target", "lower", "upper", "unit"}
CHECK_COLUMNS = [
    "strategy",
    "model",
    "workers",
    "metric",
    "target",
    "lower",
    "upper",
    "unit",
    "value",
    "deviation",
    "status",
]
COMPARE_KEYS = ["strategy", "variant", "model", "dataset", "batch_size", "precision", "workers", "nodes"]


@dataclass(frozen=True)
class Reference:
    match: dict
    metric: str
    target: float
    lower: float | None
    upper: float | None
    unit: str


def load_references(path: Path) -> list[Reference]:
    """Read and validate a references file; every problem is one line with the file and the entry."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"cannot read references {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UsageError(f"{where}: malformed YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("references"), list) or not data["references"]:
        raise UsageError(f"{path}: expected a mapping with a non-empty list 'references'")
    refs = []
    for i, entry in enumerate(data["references"], start=1):
        where = f"{path}: reference {i}"
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: {entry!r} is invalid (must be a mapping)")
        unknown = sorted(set(entry) - FIELDS)
        if unknown:
            raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(FIELDS))})")
        for key in (*KEYS, "metric", "target"):
            if key not in entry:
                raise UsageError(f"{where}: {key!r} is required")
        if entry["metric"] not in METRICS:
            raise UsageError(f"{where}: metric {entry['metric']!r} is invalid (choose from {', '.join(METRICS)})")
        if not _number(entry["target"]) or entry["target"] <= 0:
            raise UsageError(f"{where}: target {entry['target']!r} is invalid (must be a number > 0)")
        for bound, sign in (("lower", -1), ("upper", 1)):
            value = entry.get(bound)
            if value is not None and (not _number(value) or value * sign < 0 or (bound == "lower" and value < -1)):
                allowed = "a fraction between -1 and 0, e.g. -0.1" if bound == "lower" else "a fraction >= 0, e.g. 0.1"
                raise UsageError(f"{where}: {bound} tolerance {value!r} is invalid (must be {allowed}, or null)")
        if entry.get("lower") is None and entry.get("upper") is None:
            raise UsageError(f"{where}: give a lower or an upper tolerance (or both)")
        match = {k: entry[k] for k in (*KEYS, *OPTIONAL_KEYS) if k in entry}
        refs.append(
            Reference(
                match,
                entry["metric"],
                float(entry["target"]),
                entry.get("lower"),
                entry.get("upper"),
                str(entry.get("unit", "")),
            )
        )
    return refs


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check(scaling: pd.DataFrame, refs: list[Reference]) -> pd.DataFrame:
    """One row per reference: the measured value, its deviation from the target, pass / FAIL / missing."""
    rows = []
    for ref in refs:
        hit = scaling
        for key, value in ref.match.items():
            hit = hit[hit[key] == value]
        value = float(hit[ref.metric].median()) if len(hit) else float("nan")
        if hit.empty or pd.isna(value):
            status, deviation = "missing", float("nan")
        else:
            deviation = value / ref.target - 1.0
            low_ok = ref.lower is None or deviation >= ref.lower - 1e-12
            high_ok = ref.upper is None or deviation <= ref.upper + 1e-12
            status = "pass" if low_ok and high_ok else "FAIL"
        rows.append(
            [
                ref.match["strategy"],
                ref.match["model"],
                ref.match["workers"],
                ref.metric,
                ref.target,
                ref.lower,
                ref.upper,
                ref.unit,
                value,
                deviation,
                status,
            ]
        )
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def compare(a: pd.DataFrame, b: pd.DataFrame, name_a: str = "A", name_b: str = "B") -> pd.DataFrame:
    """The points two scaling tables share, side by side, with B's % difference from A."""
    metrics = ["throughput", "time_per_epoch_s", "efficiency", "test_accuracy"]
    left = a[COMPARE_KEYS + metrics]
    right = b[COMPARE_KEYS + metrics]
    both = left.merge(right, on=COMPARE_KEYS, suffixes=(f" {name_a}", f" {name_b}"))
    if both.empty:
        raise UsageError(
            f"{name_a} and {name_b} have no point in common (same strategy, variant, model, data set, "
            "batch, precision, workers and nodes)"
        )
    for m in metrics:
        both[f"{m} diff %"] = 100.0 * (both[f"{m} {name_b}"] / both[f"{m} {name_a}"] - 1.0)
    return both


# ---- as Markdown (collect --check, compare)


def _tolerance(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.0%}"


def check_markdown(checked: pd.DataFrame) -> str:
    """The references check, a row per reference."""
    from tabulate import tabulate

    rows = []
    for r in checked.itertuples():
        tol = f"{_tolerance(r.lower)} / {_tolerance(r.upper)}"
        value = "-" if math.isnan(r.value) else f"{r.value:.4g} {r.unit}".strip()
        dev = "-" if math.isnan(r.deviation) else f"{r.deviation:+.1%}"
        rows.append(
            [r.strategy, r.model, r.workers, r.metric, f"{r.target:.4g} {r.unit}".strip(), tol, value, dev, r.status]
        )
    headers = ["strategy", "model", "workers", "metric", "target", "tolerance", "measured", "deviation", "status"]
    return "## Check against references\n\n" + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _shown(value, spec: str, suffix: str = "") -> str:
    """A number as the tables show it; '-' where there is none (a script that reported no epochs)."""
    return "-" if value is None or pd.isna(value) else f"{value:{spec}}{suffix}"


def compare_markdown(both: pd.DataFrame) -> str:
    from tabulate import tabulate

    rows = []
    for r in both.to_dict(orient="records"):
        rows.append(
            [
                r["strategy"],
                r["variant"],
                r["model"],
                _shown(r["batch_size"], ""),
                r["workers"],
                r["nodes"],
                _shown(r["throughput A"], ".1f"),
                _shown(r["throughput B"], ".1f"),
                _shown(r["throughput diff %"], "+.1f", "%"),
                _shown(r["time_per_epoch_s A"], ".3f"),
                _shown(r["time_per_epoch_s B"], ".3f"),
                _shown(r["time_per_epoch_s diff %"], "+.1f", "%"),
            ]
        )
    headers = [
        "strategy",
        "variant",
        "model",
        "batch/worker",
        "workers",
        "nodes",
        "samples/s A",
        "samples/s B",
        "diff",
        "time/epoch A",
        "time/epoch B",
        "diff",
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
