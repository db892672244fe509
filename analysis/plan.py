"""The scaling planner's model of one training step. Pure: DataFrames (and a Network) in, DataFrames out.

A measured point's step time is T = global batch / throughput. It splits into the strategy's
communication, predicted from the model's bytes (run_start) and the network (a probe, analysis/network.py),
and the rest, C = T - exposed communication: compute, data wait and bookkeeping, which weak scaling keeps
constant per step. C is the mean over the measured points; a planned shape's step is C plus its exposed
communication (a pipeline's: its bubble). Communication split in k buckets or blocks overlaps the
compute window w it runs beside (ddp/horovod: the backward pass; fsdp: forward and backward):

    exposed = t/k + (k-1)/k * max(0, t - w)

The interval (about 95 %, normal) propagates the spread of C over the measured points and epochs
(prediction variance s^2 (1 + 1/n)) and the relative residual of the network's fit. docs/plan.md has
every strategy's one-line formula and the assumptions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hpc_dl.errors import UsageError

from .network import Network
from .scaling import GROUP

Z = 1.96
DDP_BUCKET = 25 * 2**20  # DistributedDataParallel's bucket_cap_mb
HOROVOD_FUSION = 64 * 2**20  # HOROVOD_FUSION_THRESHOLD's default
OVERLAP_SHARE = 2 / 3  # where the phases were not timed: the backward pass's share of the compute
PLAN_COLUMNS = GROUP + [
    "workers",
    "nodes",
    "measured",
    "throughput",
    "throughput_low",
    "throughput_high",
    "speedup",
    "speedup_low",
    "speedup_high",
    "efficiency",
    "efficiency_low",
    "efficiency_high",
    "step_s",
    "compute_s",
    "communication_s",
    "dominant",
]
VALIDATE_COLUMNS = GROUP + ["workers", "nodes", "measured", "predicted", "predicted_low", "predicted_high", "error"]


@dataclass(frozen=True)
class Sizes:
    """What a strategy's communication depends on, from run_start and the spec."""

    gradient_bytes: float
    parameter_bytes: float
    parameters: float
    precision: str = "fp32"
    blocks: int = 1  # fsdp: sharded blocks
    microbatches: int = 4  # pipeline
    compression: str = "none"  # horovod
    backward_passes: int = 1  # horovod
    average: str = "once"  # psgd


@dataclass(frozen=True)
class Term:
    name: str
    seconds: float  # per step, before overlap
    text: str  # what it is, in words
    chunks: int = 1  # buckets or blocks it is split into (what can overlap)
    residual: float = 0.0  # its link's relative fit residual


def placement(nodes: int) -> str:
    return "intra" if nodes <= 1 else "inter"


def _ring_all_reduce(z: Sizes, n: int, nodes: int, net: Network, nbytes: float, bucket: int, name: str) -> Term:
    """An all-reduce of nbytes in buckets of at most `bucket` bytes: a latency per bucket, the bytes once."""
    link = net.link("all_reduce", placement(nodes))
    k = max(1, math.ceil(nbytes / bucket))
    return Term(name, k * link.time(nbytes / k, n), link.describe(nbytes), k, link.residual)


def ddp_terms(z: Sizes, n: int, nodes: int, net: Network) -> list[Term]:
    return [_ring_all_reduce(z, n, nodes, net, z.gradient_bytes, DDP_BUCKET, "all-reduce")] if n > 1 else []


def horovod_terms(z: Sizes, n: int, nodes: int, net: Network) -> list[Term]:
    if n < 2:
        return []
    nbytes = z.gradient_bytes / 2 if z.compression == "fp16" else z.gradient_bytes
    term = _ring_all_reduce(z, n, nodes, net, nbytes, HOROVOD_FUSION, "all-reduce")
    passes = max(1, z.backward_passes)
    return [Term(term.name, term.seconds / passes, term.text, term.chunks, term.residual)]


def fsdp_terms(z: Sizes, n: int, nodes: int, net: Network) -> list[Term]:
    """Per block: the parameters gathered for the forward and again for the backward, the gradients
    reduce-scattered; parameters in the compute precision, gradients reduced in fp32."""
    if n < 2:
        return []
    u = max(1, z.blocks)
    params = z.parameter_bytes / 2 if z.precision in ("bf16", "fp16") else z.parameter_bytes
    gather, scatter = net.link("all_gather", placement(nodes)), net.link("reduce_scatter", placement(nodes))
    return [
        Term("all-gather", 2 * u * gather.time(params / u, n), "2 x " + gather.describe(params), u, gather.residual),
        Term(
            "reduce-scatter",
            u * scatter.time(z.gradient_bytes / u, n),
            scatter.describe(z.gradient_bytes),
            u,
            scatter.residual,
        ),
    ]


def psgd_terms(z: Sizes, n: int, nodes: int, net: Network) -> list[Term]:
    """Parameters (as float64, mpi4py's buffers) averaged every K steps; none per step with 'once'."""
    if n < 2 or not z.average.startswith("every:"):
        return []
    every = max(1, int(z.average.split(":", 1)[1]))
    link = net.link("all_reduce", placement(nodes))
    nbytes = 8 * z.parameters
    return [
        Term(
            "parameter average",
            link.time(nbytes, n) / every,
            f"{link.describe(nbytes)} every {every} steps",
            1,
            link.residual,
        )
    ]


def no_terms(z: Sizes, n: int, nodes: int, net: Network) -> list[Term]:
    return []


@dataclass(frozen=True)
class StrategyModel:
    name: str
    formula: str  # its one line (docs/plan.md, the plan's notes)
    terms: Callable[[Sizes, int, int, Network], list[Term]]
    window: tuple[str, ...] = ()  # the timed phases the communication runs in (and overlaps)
    pipeline: bool = False


MODELS = {
    m.name: m
    for m in [
        StrategyModel(
            "ddp",
            "T = C + exposed(k x a x 2(N-1) + 2(N-1)/N x S / B), k = ceil(S / 25 MiB)",
            ddp_terms,
            ("backward_s",),
        ),
        StrategyModel(
            "horovod",
            "T = C + exposed(k x a x 2(N-1) + 2(N-1)/N x S' / B) / K, S' = S/2 with fp16, "
            "k = ceil(S' / 64 MiB), K backward passes",
            horovod_terms,
            ("backward_s",),
        ),
        StrategyModel(
            "fsdp",
            "T = C + exposed(u x a x 3(N-1) + (N-1)/N x (2P / B_ag + S / B_rs)), u blocks",
            fsdp_terms,
            ("forward_s", "backward_s"),
        ),
        StrategyModel(
            "psgd", "T = C (average once); T = C + (a x 2(N-1) + 2(N-1)/N x 8 params / B) / K (every:K)", psgd_terms
        ),
        StrategyModel("hogwild", "T = C (no communication; one node)", no_terms),
        StrategyModel(
            "pipeline",
            "T = C / p x (m + p - 1) / m: the bubble (p-1)/(m+p-1), p stages, m micro-batches",
            no_terms,
            pipeline=True,
        ),
    ]
}


def model_for(strategy: str) -> StrategyModel:
    if strategy not in MODELS:
        raise UsageError(f"no plan model for strategy {strategy!r} (models: {', '.join(sorted(MODELS))})")
    return MODELS[strategy]


def exposed(t: float, k: int, window: float) -> float:
    """Communication time left after overlapping k-1 of its k chunks with a compute window."""
    return t / k + (k - 1) / k * max(0.0, t - window)


def window_compute(measured: float, t: float, k: int) -> float:
    """The compute in a timed phase that also holds the exposed communication (inverse of `exposed`)."""
    if k == 1:
        return max(measured - t, 0.0)
    if measured - t / k >= t:
        return measured - t / k
    return max(k * (measured - t), 0.0)


def sizes_of(row) -> Sizes:
    def num(key, default):
        v = row.get(key)
        return default if v is None or (isinstance(v, float) and math.isnan(v)) else v

    return Sizes(
        float(num("gradient_bytes", 0.0)),
        float(num("parameter_bytes", 0.0)),
        float(num("parameters", 0.0)),
        str(num("precision", "fp32")),
        int(num("sharded_blocks", 1)),
        int(num("microbatches", 4)),
        str(num("compression", "none")),
        int(num("backward_passes", 1)),
        str(num("average", "once")),
    )


def _terms_total(terms: list[Term]) -> tuple[float, int]:
    return sum(t.seconds for t in terms), max([t.chunks for t in terms], default=1)


def decompose(points: pd.DataFrame, net: Network) -> pd.DataFrame:
    """Every measured point's step: T, its predicted communication, the compute window and C."""
    out = []
    for _, row in points.iterrows():
        model, z = model_for(row["strategy"]), sizes_of(row)
        n, nodes = int(row["workers"]), int(row["nodes"])
        step = float(row["global_batch_size"]) / float(row["throughput"])
        t, k = _terms_total(model.terms(z, n, nodes, net))
        steps = float(row["samples"]) / float(row["global_batch_size"])
        phases = [row.get(c) for c in model.window]
        if model.window and all(v is not None and not pd.isna(v) for v in phases):
            window = window_compute(sum(phases) / steps, t, k)
        else:
            window = OVERLAP_SHARE * max(step - t, 0.0)
        if model.pipeline:
            p, m = n, z.microbatches
            rest = step * p * m / (m + p - 1)
        else:
            rest = step - exposed(t, k, window)
        out.append({"run": row["run"], "step_s": step, "comm_s": t, "window_s": window, "rest_s": rest})
    return pd.DataFrame(out, columns=["run", "step_s", "comm_s", "window_s", "rest_s"])


def predict(points: pd.DataFrame, net: Network, workers: int, nodes: int) -> dict:
    """One shape's step and throughput from a group's measured points (its other shapes, for validation)."""
    parts = decompose(points, net)
    first = points.iloc[0]
    model, z = model_for(first["strategy"]), sizes_of(first)
    rest, window = float(parts["rest_s"].mean()), float(parts["window_s"].mean())
    spread = float(parts["rest_s"].std(ddof=1)) ** 2 * (1 + 1 / len(parts)) if len(parts) > 1 else 0.0
    terms = model.terms(z, workers, nodes, net)
    t, k = _terms_total(terms)
    if model.pipeline:
        compute = rest / workers
        step = compute * (z.microbatches + workers - 1) / z.microbatches
        comm, batch = step - compute, float(first["batch_size"])
    else:
        compute, comm = rest, exposed(t, k, window)
        step, batch = rest + comm, float(first["batch_size"]) * workers
    residual = max([term.residual for term in terms], default=0.0)
    sigma = math.sqrt(spread + (residual * comm) ** 2)
    return {
        "step_s": step,
        "compute_s": compute,
        "communication_s": comm,
        "throughput": batch / step,
        "throughput_low": batch / (step + Z * sigma),
        "throughput_high": batch / max(step - Z * sigma, step * 1e-3),
        "dominant": dominant(model, terms, compute, comm, t, z, workers),
    }


def dominant(model: StrategyModel, terms: list[Term], compute: float, comm: float, t: float, z: Sizes, n: int) -> str:
    """The largest part of a step, in words."""
    if model.pipeline and n > 1:
        bubble = (n - 1) / (z.microbatches + n - 1)
        if comm > compute:
            return f"pipeline bubble (p-1)/(m+p-1) = {bubble:.2f} with {n} stages, {z.microbatches} micro-batches"
        return f"compute ({compute * 1e3:.3g} ms per step and stage; bubble {bubble:.2f})"
    parts = [(comm * term.seconds / t if t > 0 else 0.0, term) for term in terms]
    share, term = max(parts, key=lambda p: p[0], default=(0.0, None))
    if term is None or share <= compute:
        return f"compute ({compute * 1e3:.3g} ms per step)"
    return f"{term.text} ({share * 1e3:.3g} ms per step)"


def measured_shapes(points: pd.DataFrame) -> pd.DataFrame:
    """A group's measured throughput per shape: mean over a run's timed epochs, median over repeats."""
    per_run = points.groupby(["workers", "nodes", "run"])["throughput"].mean().reset_index()
    return per_run.groupby(["workers", "nodes"])["throughput"].median().reset_index()


def plan_group(points: pd.DataFrame, net: Network, shapes: list[tuple[int, int]]) -> pd.DataFrame:
    """One group's plan: every shape predicted from all its measured points, with speedup and efficiency
    over the group's measured baseline (the fewest workers)."""
    seen = measured_shapes(points)
    base = seen.loc[seen["workers"].idxmin()]
    first = points.iloc[0]
    rows = []
    for workers, nodes in shapes:
        p = predict(points, net, workers, nodes)
        q = workers / float(base["workers"])
        got = seen[(seen["workers"] == workers) & (seen["nodes"] == nodes)]["throughput"]
        row = {**{c: first[c] for c in GROUP}, "workers": workers, "nodes": nodes}
        row["measured"] = float(got.iloc[0]) if len(got) else float("nan")
        row.update(p)
        for s in ("", "_low", "_high"):
            row[f"speedup{s}"] = p[f"throughput{s}"] / float(base["throughput"])
            row[f"efficiency{s}"] = row[f"speedup{s}"] / q
        rows.append(row)
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def validate_group(points: pd.DataFrame, net: Network | None, fit_net) -> pd.DataFrame:
    """Leave one shape out: predict each measured shape from the others' points; error = predicted /
    measured - 1. `fit_net(points)` gives the network where no probe does (None: no shape is left)."""
    seen = measured_shapes(points)
    rows = []
    first = points.iloc[0]
    for shape in seen.itertuples(index=False):
        others = points[(points["workers"] != shape.workers) | (points["nodes"] != shape.nodes)]
        row = {**{c: first[c] for c in GROUP}, "workers": shape.workers, "nodes": shape.nodes}
        row["measured"] = shape.throughput
        use = net if net is not None else (fit_net(others) if len(others) else None)
        if others.empty or use is None:
            row.update(predicted=np.nan, predicted_low=np.nan, predicted_high=np.nan, error=np.nan)
        else:
            p = predict(others, use, int(shape.workers), int(shape.nodes))
            row.update(predicted=p["throughput"], predicted_low=p["throughput_low"])
            row.update(predicted_high=p["throughput_high"], error=p["throughput"] / shape.throughput - 1.0)
        rows.append(row)
    return pd.DataFrame(rows, columns=VALIDATE_COLUMNS)


def study_network(points: pd.DataFrame) -> Network | None:
    """No probe: one bus bandwidth fitted from the study itself, the multi-worker points' step time over
    the 1-worker points' (latency 0). None without both kinds of point."""
    ones, many = points[points["workers"] == 1], points[points["workers"] > 1]
    if ones.empty or many.empty:
        return None
    base = float((ones["global_batch_size"] / ones["throughput"]).mean())
    unit = Network.uniform(1.0, 0.0, "unit")
    u, e = [], []
    for _, row in many.iterrows():
        terms = model_for(row["strategy"]).terms(sizes_of(row), int(row["workers"]), int(row["nodes"]), unit)
        u.append(sum(t.seconds for t in terms))
        e.append(max(float(row["global_batch_size"]) / float(row["throughput"]) - base, 0.0))
    u, e = np.array(u), np.array(e)
    if not (u > 0).any():
        return None
    beta = float((u * e).sum() / (u * u).sum())
    busbw = 1.0 / beta if beta > 0 else 1e6
    residual = float(np.sqrt(np.mean(((beta * u - e) / np.where(e > 0, e, 1.0)) ** 2))) if beta > 0 else 0.0
    return Network.uniform(busbw, 0.0, "fitted from the study's own runs (no probe)", residual)
