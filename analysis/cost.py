"""What a run measured and what it held: peak memory, GPU utilisation, resource-hours and idle units.

Read from what a run folder recorded (its ranks' events, the job wrapper's exit record with its
allocation, hpc_dl/node/allocation.py), then summed up over DataFrames:
  peak_memory_mib   the largest peak any rank recorded (epoch_stop and run_stop; peak RSS on CPU workers,
                    torch.cuda.max_memory_allocated on GPUs: `memory_source` says which)
  gpu_util_mean     the mean utilisation over the GPU sampler's samples, where it ran (GPU nodes)
  resource          what the allocation is counted in: gpu (where it held GPUs), else cpu (cores)
  resource_units    the GPUs (or cores) it held; in a sweep every array task holds the largest shape
  idle_units        those its own shape did not need (a 1-GPU point of a 1,2-GPU sweep holds 1 idle GPU)
  resource_hours    resource_units x wall hours of every attempt: what the allocation cost, idle included
`idle_units` and `idle_sentences` state a sweep's idle units; the report's summary calls them.
"""

from __future__ import annotations

import pandas as pd

from hpc_dl.node.allocation import Allocation

MEMORY_EVENTS = ("epoch_stop", "run_stop")
RUN_FIELDS = (
    "peak_memory_mib",
    "memory_source",
    "gpu_util_mean",
    "resource",
    "resource_units",
    "idle_units",
    "wall_s",
    "resource_hours",
    "idle_hours",
    "node_list",
    "exclusive",
)
UNIT_NAMES = {"gpu": ("GPU", "GPUs", "GPU-hours"), "cpu": ("core", "cores", "core-hours")}


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def memory(by_rank: dict[int, list[dict]]) -> tuple[dict[int, float], float | None, str | None]:
    """(each epoch's largest peak over the ranks, the run's largest, what was measured)."""
    epochs: dict[int, float] = {}
    run, source = None, None
    for ev in (ev for evs in by_rank.values() for ev in evs):
        mib = _num(ev.get("peak_memory(MiB)"))
        if ev["event"] not in MEMORY_EVENTS or mib is None or ev.get("recovered"):
            continue
        run, source = max(run or 0.0, mib), ev.get("peak_memory_source", source)
        if ev["event"] == "epoch_stop" and isinstance(ev.get("epoch"), int):
            epochs[ev["epoch"]] = max(epochs.get(ev["epoch"], 0.0), mib)
    return epochs, run, source


def gpu_util(by_rank: dict[int, list[dict]]) -> tuple[dict[int, float], float | None]:
    """(each epoch's mean GPU utilisation %, the run's), weighting every sampler's summary by its samples."""
    per_epoch: dict[int, list[float]] = {}
    for ev in (ev for evs in by_rank.values() for ev in evs if ev["event"] == "gpu_sample"):
        for gpu in ev.get("gpus") or []:
            util, n = _num(gpu.get("util_mean(%)")), _num(gpu.get("samples"))
            if util is not None and n and isinstance(ev.get("epoch"), int):
                sums = per_epoch.setdefault(ev["epoch"], [0.0, 0.0])
                sums[0], sums[1] = sums[0] + util * n, sums[1] + n
    total = [sum(v[0] for v in per_epoch.values()), sum(v[1] for v in per_epoch.values())]
    means = {e: round(s / n, 1) for e, (s, n) in per_epoch.items() if n}
    return means, (round(total[0] / total[1], 1) if total[1] else None)


def own_units(spec: dict, profile: dict, resource: str) -> int | None:
    """What the run's own shape needs: its GPUs, or its workers' cores (threads per worker x workers)."""
    nodes, gpus = spec.get("nodes"), spec.get("gpus")
    if not isinstance(nodes, int) or not isinstance(gpus, int):
        return None
    if resource == "gpu":
        return nodes * gpus
    threads = spec.get("cpus_per_task") or (profile or {}).get("cpus_per_task") or 1
    return nodes * gpus * int(threads)


def held(exit_record, spec: dict, profile: dict | None) -> dict:
    """The run's allocation fields (RUN_FIELDS from `resource` on), from its exit record; empty where the
    record has no allocation (a run from before it was recorded, or one that never ended)."""
    record = exit_record if isinstance(exit_record, dict) else {}
    alloc = Allocation.from_record(record.get("allocation"))
    if alloc is None:
        return {}
    wall = _num(record.get("attempts_wall_s"))
    if wall is None:
        wall = _num(record.get("wall_s"))
    own = own_units(spec, profile or {}, alloc.resource)
    idle = max(alloc.units - own, 0) if own is not None else None
    return {
        "resource": alloc.resource,
        "resource_units": alloc.units,
        "idle_units": idle,
        "wall_s": wall,
        "resource_hours": alloc.units * wall / 3600 if wall is not None else None,
        "idle_hours": idle * wall / 3600 if wall is not None and idle is not None else None,
        "node_list": ",".join(alloc.node_names),
        "exclusive": alloc.exclusive,
    }


def epoch_hours(epochs: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """Each epoch's share of its run's allocation: resource_units x the epoch's hours."""
    units = epochs["run"].map(runs.drop_duplicates("run").set_index("run")["resource_units"]) if len(runs) else None
    if units is None:
        return pd.Series(dtype=float, index=epochs.index)
    return pd.to_numeric(units, errors="coerce") * pd.to_numeric(epochs["time_s"], errors="coerce") / 3600


# a scaling point's measures over its repeats: memory and utilisation their median, resource-hours the sum
# (what the point cost), the nodes it ran on, and whether every repeat had them to itself
POINT_COLUMNS = [
    "peak_memory_mib",
    "gpu_util_mean",
    "resource",
    "resource_hours",
    "idle_hours",
    "node_list",
    "exclusive",
]


def _sum(values: pd.Series):
    return values.sum(min_count=1)


def _nodes(values: pd.Series) -> str | None:
    names = sorted({n for text in values.dropna() for n in str(text).split(",") if n})
    return ",".join(names) or None


def _all(values: pd.Series):
    known = values.dropna()
    return bool(known.astype(bool).all()) if len(known) == len(values) and len(values) else None


def point_aggregations() -> dict:
    """scaling_table's named aggregations of POINT_COLUMNS."""
    return {
        "peak_memory_mib": ("peak_memory_mib", "median"),
        "gpu_util_mean": ("gpu_util_mean", "median"),
        "resource": ("resource", "first"),
        "resource_hours": ("resource_hours", _sum),
        "idle_hours": ("idle_hours", _sum),
        "node_list": ("node_list", _nodes),
        "exclusive": ("exclusive", _all),
    }


IDLE_COLUMNS = ["study", "resource", "workers", "nodes", "runs", "resource_units", "idle_units", "idle_hours"]


def idle_units(runs: pd.DataFrame) -> pd.DataFrame:
    """Per study and shape (workers x nodes), the runs that held units they did not use: how many each
    held idle, and the resource-hours those came to (summed over the shape's runs)."""
    need = {"resource", "idle_units", "idle_hours"}
    if runs.empty or not need <= set(runs.columns):
        return pd.DataFrame(columns=IDLE_COLUMNS)
    idle = runs[pd.to_numeric(runs["idle_units"], errors="coerce") > 0]
    if idle.empty:
        return pd.DataFrame(columns=IDLE_COLUMNS)
    table = (
        idle.groupby(["study", "resource", "workers", "nodes"], dropna=False)
        .agg(
            runs=("run", "count"),
            resource_units=("resource_units", "max"),
            idle_units=("idle_units", "max"),
            idle_hours=("idle_hours", "sum"),
        )
        .reset_index()
    )
    return table[IDLE_COLUMNS].sort_values(["study", "resource", "workers", "nodes"]).reset_index(drop=True)


def idle_sentences(runs: pd.DataFrame) -> list[str]:
    """The idle units of every sweep as sentences: 'sw: the 1-GPU point held 3 idle GPUs (of 4): 0.0129
    GPU-hours', 'sw: the 2-GPU point on 2 nodes held 2 idle GPUs (of 4): ...'."""
    lines = []
    for r in idle_units(runs).itertuples():
        one, many, hours = UNIT_NAMES.get(r.resource, (r.resource, r.resource, f"{r.resource}-hours"))
        workers = int(r.workers) if pd.notna(r.workers) else "?"
        idle, held_units = int(r.idle_units), int(r.resource_units)
        point = f"{workers}-{one} point" if r.resource == "gpu" else f"{workers}-worker point"
        point += f" on {int(r.nodes)} nodes" if pd.notna(r.nodes) and r.nodes > 1 else ""
        lines.append(
            f"{r.study}: the {point}{'s' if r.runs > 1 else ''} held {idle} idle {one if idle == 1 else many}"
            f"{' each' if r.runs > 1 else ''} (of {held_units}): {r.idle_hours:.3g} {hours}"
        )
    return lines
