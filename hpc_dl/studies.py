"""Study files: a named sweep or k-fold study as YAML data (shipped ones reproduce the seeds at small scale).

    name: seed-002-psgd
    claim: "one-shot parameter averaging loses accuracy as P grows"   # what the study checks
    kind: sweep                       # sweep | kfold
    strategy: [psgd]                  # sweep: strategy, nodes, gpus, repeats, vary, skip_invalid
    gpus: [1, 2, 3, 4]
    vary: {average: [once, "every:10"]}
    spec: {model: mnist-cnn, epochs: 3}   # any other JobSpec field
    # kfold: folds, models, schedulers, throttle

Shipped studies live in hpc_dl/data/studies/; `hpcdl study run NAME` takes a name or a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

SHIPPED_DIR = Path(__file__).parent / "data" / "studies"
COMMON = {"name", "claim", "kind", "spec", "throttle", "description"}
KINDS = {
    "sweep": {"strategy", "nodes", "gpus", "repeats", "vary", "skip_invalid"},
    "kfold": {"folds", "models", "schedulers"},
}


@dataclass(frozen=True)
class Study:
    name: str
    kind: str
    claim: str
    spec: dict
    options: dict = field(default_factory=dict)
    throttle: int = 4
    source: str = ""


def available() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.yaml"))}


def load(ref: str) -> Study:
    import yaml

    path = Path(ref)
    if not path.is_file():
        shipped = available()
        if ref not in shipped:
            raise UsageError(f"unknown study {ref!r} (a study file, or one of {', '.join(shipped)})")
        path = shipped[ref]
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UsageError(f"{where}: malformed YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a study is a mapping of fields")
    kind = data.get("kind", "sweep")
    if kind not in KINDS:
        raise UsageError(f"{path}: kind {kind!r} is invalid (choose from {', '.join(KINDS)})")
    allowed = COMMON | KINDS[kind]
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UsageError(
            f"{path}: unknown field {unknown[0]!r} for a {kind} study (known: {', '.join(sorted(allowed))})"
        )
    spec = data.get("spec") or {}
    if not isinstance(spec, dict):
        raise UsageError(f"{path}: spec must be a mapping of JobSpec fields")
    options = {k: data[k] for k in KINDS[kind] if k in data}
    for key in ("strategy", "nodes", "gpus", "models", "schedulers"):
        if key in options and not isinstance(options[key], list):
            options[key] = [options[key]]
    return Study(
        name=str(data.get("name", path.stem)),
        kind=kind,
        claim=str(data.get("claim", "")),
        spec=spec,
        options=options,
        throttle=int(data.get("throttle", 4)),
        source=str(path),
    )


def expand(st: Study) -> tuple[list, list[str], list[str]]:
    """A study's points, the points it skipped (with why), and each point's label."""
    from .spec import JobSpec
    from .sweep import expand_kfold, expand_with_skips, label, parse_vary

    o = st.options
    if st.kind == "sweep":
        vary = parse_vary([f"{k}={','.join(str(v) for v in vs)}" for k, vs in (o.get("vary") or {}).items()])
        points, skipped = expand_with_skips(
            st.spec,
            o.get("strategy", ["ddp"]),
            o.get("nodes", [1]),
            o.get("gpus", [1]),
            int(o.get("repeats", 1)),
            vary,
            bool(o.get("skip_invalid", False)),
        )
        return points, skipped, [label(p, vary) for p in points]
    models, schedulers = o.get("models", ["mnist-cnn"]), o.get("schedulers", ["none"])
    folds = int(o.get("folds", 5))
    fields = {"strategy": "kfold", "model": models[0], "scheduler": schedulers[0], "folds": max(folds, 2), "fold": 0}
    points = expand_kfold(JobSpec(**{**st.spec, **fields}), folds, models, schedulers)
    return points, [], [label(p) for p in points]
