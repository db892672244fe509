"""A sweep: one base JobSpec expanded over strategies x nodes x GPUs x repeats. Pure data; no I/O.

On SLURM a sweep is submitted as ONE job array (throttled with %k) and a collect job chained after it
with --dependency=afterany. SLURM gives every task of an array the same resources, so each task is
allocated the sweep's largest shape (most nodes, most GPUs per node) and its script launches only its
own point's nodes and GPUs: every point runs on a whole allocation of the same size, with no other job
on those nodes -- the same conditions for every point, as a scaling study wants. On the local profile
the points run one after another (timings on one machine must not overlap), then collect runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from .errors import SpecError, UsageError
from .spec import JobSpec, field_types

# fields a sweep varies with its own flags, or that are not training parameters
# exclusive: a sweep's array is one allocation, whole nodes for all its tasks or for none
NOT_VARIABLE = {
    "strategy",
    "nodes",
    "gpus",
    "sbatch",
    "fold",
    "folds",
    "job_name",
    "script",
    "script_args",
    "exclusive",
}


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
    if kind is bool:
        switches = {"true": True, "false": False}
        if any(x.lower() not in switches for x in items):
            raise UsageError(f"invalid {what}: {text!r} (use true and false, e.g. true,false)")
        return [switches[x.lower()] for x in items]
    return items


def parse_vary(items: tuple[str, ...] | list[str]) -> dict[str, list]:
    """['batch_size=32,64', 'compression=none,fp16'] -> {'batch_size': [32, 64], 'compression': ['none', 'fp16']}."""
    types = field_types()
    axes: dict[str, list] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        allowed = sorted(n for n in types if n not in NOT_VARIABLE)
        if not sep or name not in allowed:
            raise UsageError(f"invalid --vary {item!r} (use FIELD=V1,V2 with FIELD one of {', '.join(allowed)})")
        kind = types[name]
        axes[name] = parse_list(values, f"--vary {name}", kind if kind is not float else str)
        if kind is float:
            try:
                axes[name] = [float(v) for v in axes[name]]
            except ValueError:
                raise UsageError(f"invalid --vary {item!r} (use numbers, e.g. lr=0.01,0.1)") from None
    return axes


def expand(
    base: JobSpec | dict,
    strategies: list[str],
    nodes: list[int],
    gpus: list[int],
    repeats: int,
    vary: dict[str, list] | None = None,
    skip_invalid: bool = False,
) -> list[Point]:
    """The cross product; with skip_invalid, points a strategy cannot run are left out (see `skipped`)."""
    points, _ = expand_with_skips(base, strategies, nodes, gpus, repeats, vary, skip_invalid)
    return points


def expand_with_skips(
    base: JobSpec | dict,
    strategies: list[str],
    nodes: list[int],
    gpus: list[int],
    repeats: int,
    vary: dict[str, list] | None = None,
    skip_invalid: bool = False,
) -> tuple[list[Point], list[str]]:
    if not isinstance(repeats, int) or repeats < 1:
        raise UsageError(f"invalid repeats: {repeats!r} (must be an integer >= 1)")
    vary = vary or {}
    names = list(vary)
    fields = base.to_dict() if isinstance(base, JobSpec) else dict(base)
    points, skipped = [], []
    for strategy in dict.fromkeys(strategies):
        for n in dict.fromkeys(nodes):
            for g in dict.fromkeys(gpus):
                for values in itertools.product(*(list(dict.fromkeys(vary[k])) for k in names)):
                    extra = dict(zip(names, values, strict=True))
                    try:
                        spec = JobSpec(**{**fields, "strategy": strategy, "nodes": n, "gpus": g, **extra})
                    except SpecError as exc:
                        if not skip_invalid:
                            raise
                        label = " ".join([strategy, f"{n}x{g}", *(f"{k}={v}" for k, v in extra.items())])
                        skipped.append(f"{label}: {exc}")
                        continue
                    points += [Point(spec, r) for r in range(1, repeats + 1)]
    if not points:
        raise UsageError("every point of the sweep is invalid: " + "; ".join(skipped[:3]))
    return points, skipped


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


def largest(points: list) -> JobSpec:
    """The spec whose allocation fits every point (or spec): most nodes, most GPUs, longest time limit."""
    specs = [getattr(p, "spec", p) for p in points]
    return specs[0].replace(
        nodes=max(s.nodes for s in specs),
        gpus=max(s.gpus for s in specs),
        time_limit=max(s.time_limit for s in specs),
        cpus_per_task=max((s.cpus_per_task or 0) for s in specs) or None,
    )


def label(point: Point, vary: dict | list = ()) -> str:
    """A point as the dry run and the submission list it: 'ddp 1x2 batch_size=64 repeat 1'."""
    spec = point.spec
    if spec.strategy == "kfold":
        return f"{spec.model} scheduler {spec.scheduler} fold {spec.fold + 1}/{spec.folds}"
    axes = "".join(f" {k}={getattr(spec, k)}" for k in vary)
    return f"{spec.strategy} {spec.nodes}x{spec.gpus}{axes} repeat {point.repeat}"


def array_chunks(items: list, size: int) -> list[list]:
    """A sweep's runs cut into arrays of at most `size` tasks (their indices 0 .. size - 1), in order."""
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]
