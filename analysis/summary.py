"""The report's verdicts, from the data: DataFrames in, a list of Verdicts out. No sentence is canned; each
names the points and the numbers it was drawn from.

Points are compared within a comparison group: the scaling group less the series (strategy, variant), i.e.
one model on one data set with one batch, precision and device kind. Per group: the fastest point, the best
efficiency, where efficiency falls below EFFICIENCY_FLOOR, the points the time breakdown calls
communication- or data-bound, peak memory per rank and the task's quality against BASELINE_STRATEGY, and
the points whose measurement needs care (a repeats' interval wider than CI_LIMIT of the median, nodes
shared with other jobs).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from hpc_dl import catalog, strategies

from . import scaling as scaling_mod

# what the comparisons are against: this strategy where a group has it, else the group's first strategy in
# the registry's order
BASELINE_STRATEGY = "ddp"
EFFICIENCY_FLOOR = 0.8  # parallel efficiency below this is named
CI_LIMIT = 0.10  # a 95 % interval wider than this share of the median asks for repeats
SERIES = ("strategy", "variant")
# a bound point's time that bounds it, and what the time is spent on
BOUND_TIMES = (("communication", "communication_s", "communicating"), ("data", "data_s", "waiting for data"))
# the measurement columns collect fills where the runs recorded them (old runs have none)
PEAK_MEMORY = "peak_memory_mib"  # per point: max over ranks
NODE_LIST = "node_list"  # per run: the nodes it ran on
EXCLUSIVE = "exclusive"  # per run: whether its nodes were the job's alone


@dataclass(frozen=True)
class Verdict:
    group: str  # the comparison group's label ("" for what spans the whole study)
    kind: str  # fastest, efficiency, floor, bound, memory, quality, repeats, shared, idle
    text: str


def compare_keys(scaling: pd.DataFrame) -> list[str]:
    """The comparison group's columns: the scaling group (weak or strong) less the series."""
    strong = "scaling" in scaling and not scaling.empty and scaling["scaling"].iloc[0] == "strong"
    return [c for c in (scaling_mod.STRONG_GROUP if strong else scaling_mod.GROUP) if c not in SERIES]


def group_label(key: dict) -> str:
    """model / dataset / bs 64 (or global bs 256) / precision / device."""
    batch = f"bs {key['batch_size']}" if "batch_size" in key else f"global bs {key['global_batch_size']}"
    return " / ".join([str(key["model"]), str(key["dataset"]), batch, str(key["precision"]), str(key["device"])])


def series_label(point) -> str:
    """A series' name: its strategy, and its variant where it has one (psgd (average=weights))."""
    variant = getattr(point, "variant", "-")
    return point.strategy + (f" ({variant})" if isinstance(variant, str) and variant != "-" else "")


def workers(n) -> str:
    return f"{int(n)} worker" + ("" if int(n) == 1 else "s")


def groups(scaling: pd.DataFrame):
    """(label, key, points) per comparison group, in the table's order."""
    keys = compare_keys(scaling)
    for values, part in scaling.groupby(keys, dropna=False, sort=False):
        key = dict(zip(keys, values, strict=True))
        yield group_label(key), key, part.assign(series=[series_label(p) for p in part.itertuples()])


def task(key: dict) -> catalog.TaskInfo:
    return catalog.task_of(key["model"], key["dataset"])


def rate_column(info: catalog.TaskInfo) -> str:
    """The column of the task's rate, in its unit (info.throughput per second): its own epoch stat where it
    has one (tokens/s for a language model), else the loop's throughput (samples, images: one a sample)."""
    own = f"{info.throughput}/s"
    return next((m.name for m in info.epoch_metrics if m.unit == own), "throughput")


def baseline_strategy(points: pd.DataFrame) -> str:
    present = set(points["strategy"])
    if BASELINE_STRATEGY in present:
        return BASELINE_STRATEGY
    return next((s for s in strategies.STRATEGIES if s in present), sorted(present)[0])


def summarize(
    scaling: pd.DataFrame,
    breakdown: pd.DataFrame | None = None,
    runs: pd.DataFrame | None = None,
    idle: list[str] | None = None,
) -> list[Verdict]:
    """Every verdict, group by group; `idle`: the study's idle-units statements (cost.idle_sentences)."""
    verdicts = []
    context = point_context(scaling, runs) if runs is not None else None
    for label, key, points in groups(scaling):
        measured = points[points["throughput"].notna()]
        if measured.empty:
            continue
        found = [
            _fastest(measured, key),
            _best_efficiency(measured),
            _floor(measured),
            *_bound(measured, breakdown),
            *_memory(measured),
            _quality(measured, key),
            *_repeats(measured),
            *(_shared(measured, context) if context is not None else []),
        ]
        verdicts += [Verdict(label, kind, text) for kind, text in found if text]
    verdicts += [Verdict("", "idle", text) for text in idle or []]
    return verdicts


def _fastest(points: pd.DataFrame, key: dict) -> tuple[str, str]:
    info = task(key)
    rate = rate_column(info)
    best = points.loc[points[rate].idxmax()]
    text = f"fastest: {best.series} at {workers(best.workers)}, {best[rate]:.1f} {info.throughput}/s"
    if best.workers > best.baseline_workers:
        text += f" ({best.speedup:.2f}x its {int(best.baseline_workers)}-worker baseline)"
    return "fastest", text


def _scaled(points: pd.DataFrame) -> pd.DataFrame:
    """The points with more workers than their series' baseline (the only ones with an efficiency to judge)."""
    return points[(points["workers"] > points["baseline_workers"]) & points["efficiency"].notna()]


def _best_efficiency(points: pd.DataFrame) -> tuple[str, str]:
    scaled = _scaled(points)
    if scaled.empty:
        return "efficiency", ""
    best = scaled.loc[scaled["efficiency"].idxmax()]
    return "efficiency", (
        f"best efficiency: {best.series} at {workers(best.workers)}, {best.efficiency:.2f} "
        f"(from {workers(best.baseline_workers)})"
    )


def _floor(points: pd.DataFrame) -> tuple[str, str]:
    """Per series, the fewest workers at which efficiency falls below the floor."""
    scaled = _scaled(points)
    if scaled.empty:
        return "floor", ""
    below = scaled[scaled["efficiency"] < EFFICIENCY_FLOOR].sort_values("workers")
    if below.empty:
        return "floor", (
            f"efficiency stays at or above {EFFICIENCY_FLOOR} up to {workers(scaled['workers'].max())} "
            f"({len(scaled)} scaled point(s))"
        )
    first = below.drop_duplicates("series").sort_values(["efficiency", "series"])
    named = ", ".join(f"{p.series} from {workers(p.workers)} ({p.efficiency:.2f})" for p in first.itertuples())
    return "floor", f"efficiency falls below {EFFICIENCY_FLOOR}: {named}"


def _point_key(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Each row's point as one comparable value (numbers as floats: a batch of 64 is 64.0 either way)."""
    parts = [
        pd.to_numeric(frame[c], errors="coerce").astype(float).astype(str)
        if pd.api.types.is_numeric_dtype(frame[c])
        else frame[c].astype(str)
        for c in columns
    ]
    return pd.Series(list(zip(*parts, strict=True)), index=frame.index, dtype=object)


def _bound(points: pd.DataFrame, breakdown: pd.DataFrame | None) -> list[tuple[str, str]]:
    """What the time breakdown calls each timed point of the group: the communication- and data-bound ones
    by name (the breakdown's rows are matched to the group's points, weak or strong scaling alike)."""
    if breakdown is None or breakdown.empty:
        return []
    columns = [c for c in (*scaling_mod.GROUP, "workers", "nodes") if c in breakdown and c in points]
    mine = breakdown[_point_key(breakdown, columns).isin(set(_point_key(points, columns)))]
    if mine.empty:
        return []
    mine = mine.assign(series=[series_label(p) for p in mine.itertuples()])
    found = []
    for bound, column, what in BOUND_TIMES:
        part = mine[mine["bound"] == bound]
        if not part.empty:
            named = ", ".join(
                f"{p.series} at {workers(p.workers)} ({getattr(p, column):.2f} s of {p.time_per_epoch_s:.2f} s "
                f"per epoch {what})"
                for p in part.itertuples()
            )
            found.append(("bound", f"{bound}-bound: {named}"))
    rest = int((mine["bound"] == "compute").sum())
    if rest:
        share = "all" if rest == len(mine) else "the other"
        found.append(("bound", f"compute-bound: {share} {rest} timed point(s)"))
    return found


def _against_baseline(points: pd.DataFrame, column: str) -> tuple[str, pd.DataFrame]:
    """The baseline strategy, and every other series' points joined to its points at the same workers."""
    base_name = baseline_strategy(points)
    have = points[points[column].notna()]
    base = have[have["strategy"] == base_name].drop_duplicates("workers")[["workers", column]]
    others = have[have["strategy"] != base_name]
    return base_name, others.merge(base, on="workers", suffixes=("", "_base"))


def _memory(points: pd.DataFrame) -> list[tuple[str, str]]:
    """Each series' smallest ratio of peak memory per rank to the baseline's at the same workers, where < 1."""
    if PEAK_MEMORY not in points:
        return []
    base, joined = _against_baseline(points, PEAK_MEMORY)
    if joined.empty:
        return []
    joined = joined.assign(ratio=joined[PEAK_MEMORY] / joined[f"{PEAK_MEMORY}_base"])
    best = joined.sort_values(["ratio", "workers"]).drop_duplicates("series")
    wins = best[best["ratio"].round(2) < 1.0]
    if wins.empty:
        return [("memory", f"no strategy uses less peak memory per rank than {base} at the same workers")]
    return [
        (
            "memory",
            f"{p.series} uses {p.ratio:.2f}x {base}'s peak memory per rank at {workers(p.workers)} "
            f"({getattr(p, PEAK_MEMORY):.0f} vs {getattr(p, PEAK_MEMORY + '_base'):.0f} MiB)",
        )
        for p in wins.itertuples()
    ]


def _quality(points: pd.DataFrame, key: dict) -> tuple[str, str]:
    """The task's quality (its first metric) of every other series against the baseline's, at the most
    workers they share: each cost by name, the largest first; the series that cost nothing together."""
    metric = task(key).metrics[0]
    if metric.name not in points:
        return "quality", ""
    base, joined = _against_baseline(points, metric.name)
    if joined.empty:
        return "quality", ""
    sign = 1.0 if metric.higher_is_better else -1.0
    joined = joined.assign(delta=(joined[metric.name] - joined[f"{metric.name}_base"]).round(3))
    last = joined.sort_values("workers").drop_duplicates("series", keep="last")
    last = last.assign(cost=-sign * last["delta"]).sort_values(["cost", "series"], ascending=[False, True])
    costs, free = last[last["cost"] > 0], last[last["cost"] <= 0]
    named = [
        f"{p.series} {p.delta:+.3f} at {workers(p.workers)} ({getattr(p, metric.name):.3f} vs "
        f"{getattr(p, metric.name + '_base'):.3f})"
        for p in costs.itertuples()
    ]
    if not free.empty:
        low, high = free["delta"].min(), free["delta"].max()
        span = f"{low:+.3f}" if low == high else f"{low:+.3f} to {high:+.3f}"
        named.append(f"no cost: {', '.join(free['series'])} ({span})")
    better = "higher" if metric.higher_is_better else "lower"
    return "quality", f"{metric.header} against {base} at the same workers ({better} is better): {'; '.join(named)}"


def ci_share(points: pd.DataFrame) -> pd.Series:
    """The 95 % interval's width as a share of the median throughput (NaN for a point that ran once)."""
    return (points["throughput_ci_high"] - points["throughput_ci_low"]) / points["throughput"]


def _repeats(points: pd.DataFrame) -> list[tuple[str, str]]:
    shared = points.assign(share=ci_share(points))
    wide = shared[shared["share"] > CI_LIMIT]
    found = []
    if not wide.empty:
        named = ", ".join(
            f"{p.series} at {workers(p.workers)} (95% CI {p.throughput_ci_low:.1f}-{p.throughput_ci_high:.1f}, "
            f"{100 * p.share:.0f} % of the median)"
            for p in wide.itertuples()
        )
        found.append(("repeats", f"add repeats: {named}"))
    once = int((points["runs"] == 1).sum())
    if once:
        found.append(("repeats", f"{once} of {len(points)} point(s) ran once: no interval to judge them by"))
    return found


def _shared(points: pd.DataFrame, context: pd.DataFrame) -> list[tuple[str, str]]:
    keys = [*compare_keys(points), *SERIES, "workers", "nodes"]
    mine = points[keys].merge(context, on=keys)
    if "shared" not in mine or mine["shared"].isna().all():
        return []
    shared = mine[mine["shared"] == True]  # noqa: E712 (True, False or missing)
    if shared.empty:
        return [("shared", f"every point ran on nodes of its own (--exclusive): {len(mine)} point(s)")]
    named = ", ".join(f"{series_label(p)} at {workers(p.workers)} on {p.node_names}" for p in shared.itertuples())
    return [("shared", f"shared nodes (not --exclusive), other jobs may have slowed them: {named}")]


def point_runs(runs: pd.DataFrame, scaling: pd.DataFrame) -> pd.DataFrame:
    """The completed runs of the table's points, with the point's key columns as the table has them."""
    keys = [*compare_keys(scaling), *SERIES, "workers", "nodes"]
    done = runs[(runs["state"] == "COMPLETED") & (runs["strategy"] != "kfold")]
    done = done.assign(**{c: scaling_mod.whole(done[c]) for c in ("batch_size", "global_batch_size") if c in keys})
    return done.astype({c: scaling[c].dtype for c in keys if c in scaling}, errors="ignore")


def _names(values: pd.Series) -> str:
    """The distinct node names of a point's runs, or "-": each run's a list, or one string separated by
    commas (SLURM's compressed ranges, c[1-3,5], stay whole)."""
    seen = []
    for value in values.dropna():
        names = value if isinstance(value, (list, tuple)) else re.split(r",(?![^\[]*\])", str(value))
        for name in (str(n).strip() for n in names):
            if name and name not in seen:
                seen.append(name)
    return ", ".join(seen) or "-"


def _device_models(values: pd.Series) -> str:
    return "; ".join(dict.fromkeys(str(v) for v in values.dropna())) or "-"


def _not_exclusive(value) -> bool | None:
    """A run's nodes were shared: True, False, or None where it did not record it."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return not bool(value)


def point_context(scaling: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per point: the nodes its runs ran on, its device model, whether any run shared its nodes (missing
    where the runs did not record it), and its interval's share of the median."""
    keys = [*compare_keys(scaling), *SERIES, "workers", "nodes"]
    done = point_runs(runs, scaling)
    nodes = done[NODE_LIST] if NODE_LIST in done else pd.Series(None, index=done.index, dtype=object)
    flags = done[EXCLUSIVE] if EXCLUSIVE in done else pd.Series(None, index=done.index, dtype=object)
    done = done.assign(_nodes=nodes, _shared=flags.map(_not_exclusive))
    per_point = (
        done.groupby(keys, dropna=False)
        .agg(
            node_names=("_nodes", _names),
            device_model=("device_name", _device_models),
            shared=("_shared", lambda v: None if v.isna().all() else bool(v.fillna(False).any())),
        )
        .reset_index()
    )
    table = scaling[keys + ["runs", "throughput", "throughput_ci_low", "throughput_ci_high"]]
    table = table.assign(ci_share=ci_share(scaling))
    return table.merge(per_point, on=keys, how="left")


def markdown(verdicts: list[Verdict]) -> list[str]:
    """The summary as Markdown lines: a bold group label, then a bullet per verdict."""
    lines = []
    for label, part in by_group(verdicts):
        lines += ["", f"**{label or 'the whole study'}**", ""] + [f"- {v.text}." for v in part]
    return lines


def by_group(verdicts: list[Verdict]) -> list[tuple[str, list[Verdict]]]:
    """The verdicts grouped, in order of first appearance (what the page's template loops over)."""
    order: dict[str, list[Verdict]] = {}
    for v in verdicts:
        order.setdefault(v.group, []).append(v)
    return list(order.items())
