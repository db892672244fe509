"""The scaling planner's model of one training step. Pure: DataFrames (and a Network) in, DataFrames out.

A measured point's step time is T = global batch / throughput (less the time its threads waited for a
CPU, plan_inputs.py). The strategy's communication per step, t, comes from the model's bytes (run_start)
and the network (a probe, analysis/network.py); each strategy's terms are in analysis/plan_terms.py.
Communication in k buckets or blocks overlaps the compute window w it runs beside (ddp/horovod: the
backward pass; fsdp: forward and backward), leaving exposed = t/k + (k-1)/k * max(0, t - w). The step is

    T = C + kappa * exposed

C, the rest (compute, data wait, bookkeeping), stays constant per step under weak scaling; kappa is what
the training pays per second of the communication the network predicts (synchronisation, contention):
fitted by least squares where the points include some without communication (1 worker) and some with,
else 1 (the probe as measured). A pipeline's step is C/p x (m+p-1)/m instead (its bubble). The interval
(about 95 %, normal) is the fit's prediction interval, s^2 (1 + 1/n + leverage), with the network fit's
relative residual on top. docs/plan.md has every strategy's one-line formula and the assumptions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .network import Network
from .plan_terms import Sizes, StrategyModel, Term, model_for
from .scaling import GROUP

Z = 1.96
OVERLAP_SHARE = 2 / 3  # where the phases were not timed: the backward pass's share of the compute
PLAN_COLUMNS = GROUP + [
    "workers",
    "nodes",
    "measured",
    "measured_raw",
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
    "kappa",
    "dominant",
]
VALIDATE_COLUMNS = GROUP + [
    "workers",
    "nodes",
    "measured",
    "measured_raw",
    "predicted",
    "predicted_low",
    "predicted_high",
    "error",
    "error_raw",
]


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
    """Every measured point's step T, the compute window and the exposed communication the network predicts."""
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
        if model.pipeline:  # the whole batch's compute on one device: T = C/p x (m+p-1)/m
            step = step * n * z.microbatches / (z.microbatches + n - 1)
        out.append({"run": row["run"], "step_s": step, "window_s": window, "exposed_s": exposed(t, k, window)})
    return pd.DataFrame(out, columns=["run", "step_s", "window_s", "exposed_s"])


@dataclass(frozen=True)
class Fit:
    """T = C + kappa x exposed: C the rest of the step, kappa what the training pays per second of the
    communication the network predicts (1: as probed), with the residual variance of the fit."""

    rest: float
    kappa: float
    fitted: bool  # kappa fitted from points with and without communication (else 1)
    n: int
    s2: float  # residual variance
    xbar: float
    sxx: float
    window: float

    def variance(self, x: float) -> float:
        """Prediction variance of a new step at exposed communication x (OLS; the mean's where kappa is fixed)."""
        lever = (x - self.xbar) ** 2 / self.sxx if self.fitted and self.sxx > 0 else 0.0
        return self.s2 * (1 + 1 / self.n + lever)


def fit(parts: pd.DataFrame) -> Fit:
    x, y = parts["exposed_s"].to_numpy(dtype=float), parts["step_s"].to_numpy(dtype=float)
    n, window = len(y), float(parts["window_s"].mean())
    fitted = bool((x <= 0).any() and (x > 0).any())
    if fitted:
        kappa = max(float(np.polyfit(x, y, 1)[0]), 0.0)
        rest = float((y - kappa * x).mean())
    else:
        kappa, rest = 1.0, float((y - x).mean())
    residuals = y - rest - kappa * x
    dof = n - (2 if fitted else 1)
    s2 = float((residuals**2).sum() / dof) if dof > 0 else 0.0
    return Fit(rest, kappa, fitted, n, s2, float(x.mean()), float(((x - x.mean()) ** 2).sum()), window)


def predict(points: pd.DataFrame, net: Network, workers: int, nodes: int) -> dict:
    """One shape's step and throughput from a group's measured points (its other shapes, for validation)."""
    f = fit(decompose(points, net))
    first = points.iloc[0]
    model, z = model_for(first["strategy"]), sizes_of(first)
    terms = model.terms(z, workers, nodes, net)
    t, k = _terms_total(terms)
    x = exposed(t, k, f.window)
    if model.pipeline:
        compute = f.rest / workers
        step = compute * (z.microbatches + workers - 1) / z.microbatches
        comm, batch = step - compute, float(first["batch_size"])
    else:
        compute, comm = f.rest, f.kappa * x
        step, batch = f.rest + comm, float(first["batch_size"]) * workers
    residual = max([term.residual for term in terms], default=0.0)
    sigma = math.sqrt(f.variance(x) + (residual * comm) ** 2)
    return {
        "step_s": step,
        "compute_s": compute,
        "communication_s": comm,
        "kappa": f.kappa if f.fitted else float("nan"),
        "throughput": batch / step,
        "throughput_low": batch / (step + Z * sigma),
        "throughput_high": batch / max(step - Z * sigma, step * 1e-3),
        "dominant": dominant(model, terms, compute, comm, t, z, workers, f.kappa),
    }


def dominant(
    model: StrategyModel, terms: list[Term], compute: float, comm: float, t: float, z: Sizes, n: int, kappa: float = 1.0
) -> str:
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
    paid = f", kappa {kappa:.3g}" if kappa != 1.0 else ""
    return f"{term.text} ({share * 1e3:.3g} ms per step{paid})"


def measured_shapes(points: pd.DataFrame) -> pd.DataFrame:
    """A group's measured throughput per shape (less the time its threads waited for a CPU; `raw`: as
    measured): mean over a run's timed epochs, median over repeats."""
    points = points.assign(raw=points["raw_throughput"] if "raw_throughput" in points else points["throughput"])
    per_run = points.groupby(["workers", "nodes", "run"])[["throughput", "raw"]].mean().reset_index()
    return per_run.groupby(["workers", "nodes"])[["throughput", "raw"]].median().reset_index()


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
        got = seen[(seen["workers"] == workers) & (seen["nodes"] == nodes)]
        row = {**{c: first[c] for c in GROUP}, "workers": workers, "nodes": nodes}
        row["measured"] = float(got["throughput"].iloc[0]) if len(got) else float("nan")
        row["measured_raw"] = float(got["raw"].iloc[0]) if len(got) else float("nan")
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
        row.update(measured=shape.throughput, measured_raw=shape.raw)
        use = net if net is not None else (fit_net(others) if len(others) else None)
        if others.empty or use is None:
            row.update(dict.fromkeys(VALIDATE_COLUMNS[-5:], np.nan))
        else:
            p = predict(others, use, int(shape.workers), int(shape.nodes))
            row.update(predicted=p["throughput"], predicted_low=p["throughput_low"])
            row.update(predicted_high=p["throughput_high"], error=p["throughput"] / shape.throughput - 1.0)
            row["error_raw"] = p["throughput"] / shape.raw - 1.0
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
