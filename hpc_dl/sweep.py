"""A sweep: one base JobSpec expanded over strategies x nodes x GPUs x repeats. Pure data; no I/O.

On SLURM a sweep is submitted as ONE job array (throttled with %k) and a collect job chained after it
with --dependency=afterany. SLURM gives every task of an array the same resources, so each task is
allocated the sweep's largest shape (most nodes, most GPUs per node) and its script launches only its
own point's nodes and GPUs: every point runs on a whole allocation of the same size, with no other job
on those nodes -- the same conditions for every point, as a scaling study wants. On the local profile
the points run one after another (timings on one machine must not overlap), then collect runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError
from .spec import JobSpec


@dataclass(frozen=True)
class Point:
    spec: JobSpec
    repeat: int  # 1-based


def parse_list(text: str, what: str, kind: type = str) -> list:
    """'1,2,4' -> [1, 2, 4]; one clear line for anything else."""
    items = [x.strip() for x in str(text).split(",")]
    if not all(items):
        raise UsageError(f"invalid {what}: {text!r} (use a comma-separated list, e.g. 1,2,4)")
    if kind is int:
        try:
            return [int(x) for x in items]
        except ValueError:
            raise UsageError(f"invalid {what}: {text!r} (use a comma-separated list of integers, e.g. 1,2,4)") from None
    return items


def expand(base: JobSpec, strategies: list[str], nodes: list[int], gpus: list[int], repeats: int) -> list[Point]:
    if not isinstance(repeats, int) or repeats < 1:
        raise UsageError(f"invalid repeats: {repeats!r} (must be an integer >= 1)")
    points = []
    for strategy in dict.fromkeys(strategies):
        for n in dict.fromkeys(nodes):
            for g in dict.fromkeys(gpus):
                spec = base.replace(strategy=strategy, nodes=n, gpus=g)
                points += [Point(spec, r) for r in range(1, repeats + 1)]
    return points


def expand_kfold(base: JobSpec, folds: int, models: list[str], schedulers: list[str]) -> list[Point]:
    """Every fold x model x scheduler of a K-fold cross-validation, each one run of strategy kfold."""
    if not isinstance(folds, int) or folds < 2:
        raise UsageError(f"invalid folds: {folds!r} (must be an integer >= 2)")
    return [
        Point(base.replace(strategy="kfold", model=m, scheduler=sch, folds=folds, fold=k), 1)
        for m in dict.fromkeys(models)
        for sch in dict.fromkeys(schedulers)
        for k in range(folds)
    ]


def largest(points: list[Point]) -> JobSpec:
    """The spec whose allocation fits every point: most nodes, most GPUs, longest time limit."""
    first = points[0].spec
    return first.replace(
        nodes=max(p.spec.nodes for p in points),
        gpus=max(p.spec.gpus for p in points),
        time_limit=max(p.spec.time_limit for p in points),
        cpus_per_task=max((p.spec.cpus_per_task or 0) for p in points) or None,
    )
