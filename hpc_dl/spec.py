"""JobSpec: what to run, as plain validated data. Knows nothing about clusters (see profiles.py)."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from . import catalog, strategies
from .errors import SpecError

SBATCH_KEY = re.compile(r"[a-z][a-z0-9-]*")  # a long sbatch option name, as used in #SBATCH --key=value
_TIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time(value: str | int, what: str = "time limit") -> int:
    """A SLURM time ("MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS") in whole minutes."""
    text = str(value).strip()
    m = _TIME_RE.match(text)
    if not m:
        raise SpecError(
            f"invalid {what}: {text!r} (use minutes, HH:MM:SS or D-HH:MM:SS, e.g. 30, 01:00:00, 1-00:00:00)"
        )
    days, a, b, c = m.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = int(days) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:  # MM:SS
        seconds = int(a) * 60 + int(b)
    else:  # MM
        seconds = int(a) * 60
    minutes = -(-seconds // 60)
    if minutes < 1:
        raise SpecError(f"invalid {what}: {text!r} (must be at least one minute)")
    return minutes


def format_time(minutes: int) -> str:
    """Minutes as SLURM's D-HH:MM:SS (HH:MM:SS under a day)."""
    days, rest = divmod(int(minutes), 1440)
    hours, mins = divmod(rest, 60)
    hms = f"{hours:02d}:{mins:02d}:00"
    return f"{days}-{hms}" if days else hms


def _names(d) -> str:
    return ", ".join(sorted(d))


@dataclass(frozen=True)
class JobSpec:
    """One training job. `gpus` is GPUs per node; on a CPU-only node it is the number of worker processes."""

    strategy: str = "ddp"
    nodes: int = 1
    gpus: int = 1
    cpus_per_task: int | None = None  # None: the profile's default
    model: str = "mnist-cnn"
    dataset: str = "fashion-mnist"
    data_root: str | None = None
    train_samples: int | None = None  # use the first N training images (None: all)
    test_samples: int | None = None
    image_size: int | None = None  # None: the dataset's native size, raised to the model's minimum
    epochs: int = 1
    batch_size: int = 64  # per worker
    lr: float = 0.01
    seed: int = 0
    precision: str = "fp32"
    time_limit: int = 60  # minutes
    partition: str | None = None  # None: the profile's default
    gpu_type: str | None = None  # None: the partition's default
    job_name: str | None = None  # None: hpcdl-<strategy>
    sbatch: dict[str, str] = field(default_factory=dict)  # extra sbatch options, e.g. {"account": "x"}
    # strategy options (None: the strategy's default; each is valid with its strategy only)
    compression: str | None = None  # horovod: none | fp16
    backward_passes: int | None = None  # horovod: backward passes per allreduce
    average: str | None = None  # psgd: once | every:K
    stages: int | None = None  # pipeline: stages (one per rank)
    microbatches: int | None = None  # pipeline: micro-batches per batch
    folds: int | None = None  # kfold: K
    fold: int | None = None  # kfold: which fold this run holds out (0-based)
    scheduler: str | None = None  # learning-rate schedule: none | cosine | step

    def __post_init__(self) -> None:
        self.validate()

    # -- validation: every invalid field answered by one line naming field, value and what is allowed
    def validate(self) -> None:
        if self.strategy not in strategies.STRATEGIES:
            raise SpecError(f"unknown strategy {self.strategy!r} (choose from {_names(strategies.STRATEGIES)})")
        if self.model not in catalog.MODELS:
            raise SpecError(f"unknown model {self.model!r} (choose from {_names(catalog.MODELS)})")
        if self.dataset not in catalog.DATASETS:
            raise SpecError(f"unknown dataset {self.dataset!r} (choose from {_names(catalog.DATASETS)})")
        if self.precision not in catalog.PRECISIONS:
            raise SpecError(f"invalid precision {self.precision!r} (choose from {', '.join(catalog.PRECISIONS)})")
        _positive("nodes", self.nodes)
        _positive("gpus", self.gpus)
        _positive("epochs", self.epochs)
        _positive("batch-size", self.batch_size)
        _positive("time limit", self.time_limit)
        for name in ("cpus_per_task", "train_samples", "test_samples", "image_size"):
            value = getattr(self, name)
            if value is not None:
                _positive(name.replace("_", "-"), value)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise SpecError(f"invalid seed: {self.seed!r} (must be an integer >= 0)")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not self.lr > 0:
            raise SpecError(f"invalid lr: {self.lr!r} (must be a number > 0)")
        info = catalog.DATASETS[self.dataset]
        if info.needs_data_root and not self.data_root:
            raise SpecError(f"dataset {self.dataset!r} needs --data-root (a folder that already holds it)")
        strategy = strategies.get(self.strategy)
        if strategy.max_nodes is not None and self.nodes > strategy.max_nodes:
            raise SpecError(
                f"invalid nodes: {self.nodes} (strategy {self.strategy!r} runs on at most {strategy.max_nodes} node)"
            )
        if self.job_name is not None:
            if not self.job_name or any(ord(c) < 32 or ord(c) == 127 for c in self.job_name):
                raise SpecError(f"invalid job name: {self.job_name!r} (must be non-empty, with no control characters)")
        for key, value in self.sbatch.items():
            if not SBATCH_KEY.fullmatch(key):
                raise SpecError(f"invalid sbatch option {key!r} (use a long option name such as account or qos)")
            if any(ord(c) < 32 for c in str(value)):
                raise SpecError(f"invalid sbatch option {key}: {value!r} (no control characters)")

        self._validate_strategy_options()

    STRATEGY_OPTIONS = {
        "compression": ("horovod",),
        "backward_passes": ("horovod",),
        "average": ("psgd",),
        "stages": ("pipeline",),
        "microbatches": ("pipeline",),
        "folds": ("kfold",),
        "fold": ("kfold",),
    }

    def _validate_strategy_options(self) -> None:
        for name, owners in self.STRATEGY_OPTIONS.items():
            if getattr(self, name) is not None and self.strategy not in owners:
                flag = "--" + name.replace("_", "-")
                raise SpecError(f"{flag} applies to strategy {owners[0]!r} only, not {self.strategy!r}")
        if self.compression is not None and self.compression not in catalog.COMPRESSIONS:
            raise SpecError(f"invalid compression {self.compression!r} (choose from {', '.join(catalog.COMPRESSIONS)})")
        if self.scheduler is not None and self.scheduler not in catalog.SCHEDULERS:
            raise SpecError(f"invalid scheduler {self.scheduler!r} (choose from {', '.join(catalog.SCHEDULERS)})")
        for name in ("backward_passes", "stages", "microbatches"):
            if getattr(self, name) is not None:
                _positive(name.replace("_", "-"), getattr(self, name))
        if self.average is not None and average_every(self.average) is None and self.average != "once":
            raise SpecError(f"invalid average {self.average!r} (use once, or every:K for every K steps, e.g. every:10)")
        if self.strategy == "pipeline":
            stages = self.stages or self.world_size
            if stages != self.world_size:
                raise SpecError(
                    f"invalid stages: {stages} (pipeline runs one stage per rank: {self.world_size} rank(s) "
                    f"need {self.world_size} stages)"
                )
            if stages < 2:
                raise SpecError(f"pipeline needs at least 2 stages, so at least 2 workers (got {self.world_size})")
            if not catalog.MODELS[self.model].splittable:
                splittable = ", ".join(n for n, m in catalog.MODELS.items() if m.splittable)
                raise SpecError(f"model {self.model!r} cannot be split into pipeline stages (choose from {splittable})")
        if self.strategy == "kfold":
            if self.folds is None or self.fold is None:
                raise SpecError("strategy 'kfold' needs folds and fold (hpcdl kfold sets them)")
            if self.folds < 2 or not 0 <= self.fold < self.folds:
                raise SpecError(f"invalid fold: {self.fold} of {self.folds} (need folds >= 2 and 0 <= fold < folds)")
            if self.gpus != 1:
                raise SpecError(f"invalid gpus: {self.gpus} (a kfold run trains one model in one process: use 1)")

    # -- derived values
    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus

    @property
    def name(self) -> str:
        return self.job_name if self.job_name is not None else f"hpcdl-{self.strategy}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown spec field {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**data)

    def replace(self, **changes: Any) -> JobSpec:
        return dataclasses.replace(self, **changes)


def average_every(text: str) -> int | None:
    """'every:K' -> K (K >= 1); anything else -> None."""
    m = re.fullmatch(r"every:(\d+)", text or "")
    return int(m[1]) if m and int(m[1]) >= 1 else None


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"invalid {name}: {value!r} (must be an integer >= 1)")
