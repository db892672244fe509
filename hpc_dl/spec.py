"""JobSpec: what to run, as plain validated data. Knows nothing about clusters (see profiles.py)."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from . import byo, catalog, strategies
from .devices import DEVICES
from .errors import SpecError
from .units import DERIVED_SBATCH, MEMORY, SBATCH_KEY


def _names(d) -> str:
    return ", ".join(sorted(d))


def _field(
    default: Any = None,
    help: str = "",
    *,
    entry: bool = False,
    owners: tuple[str, ...] = (),
    cli: bool = True,
    **option: Any,
):
    """One field, declared once: its default, its help, whether the entrypoint on the node gets it
    (`entry`), the strategies it belongs to (`owners`), whether the spec options of the CLI include it
    (`cli`; False where a command sets it its own way) and how the option looks (`option`: flag,
    metavar, choices). The CLI options, the entrypoint's argv and its parser are all derived from these
    declarations (`spec_fields`, `entry_fields`)."""
    factory = {"default_factory": dict} if default is dict else {"default": default}
    meta = {"help": help, "entry": entry, "owners": owners, "cli": cli, "option": option}
    return field(metadata=meta, **factory)


def _choices(d) -> str:
    return ", ".join(d)


@dataclass(frozen=True)
class JobSpec:
    """One training job. `gpus` is GPUs per node; on a CPU-only node it is the number of worker processes."""

    strategy: str = _field("ddp", f"One of: {_choices(strategies.STRATEGIES)}.", cli=False)
    nodes: int = _field(1, "Number of nodes.", cli=False)
    gpus: int = _field(1, "GPUs per node; on a node without GPUs, worker processes per node.", cli=False)
    device: str = _field(
        "auto",
        "auto: GPUs where the node has them, else CPU worker processes; cpu: CPU workers even on a GPU node; "
        "gpu: GPUs only.",
        choices=DEVICES,
    )
    cpus_per_task: int | None = _field(None, "CPU threads per worker (default: the profile's).")
    model: str = _field(
        "mnist-cnn", f"One of: {_choices(catalog.MODELS)}; or your own: package.module:function.", entry=True
    )
    dataset: str = _field(
        "fashion-mnist", f"One of: {_choices(catalog.DATASETS)}; or your own: package.module:function.", entry=True
    )
    data_root: str | None = _field(
        None, "Folder that holds the data set (never downloaded).", entry=True, metavar="DIR"
    )
    train_samples: int | None = _field(None, "Use only the first N training images.", entry=True)
    test_samples: int | None = _field(None, "Use only the first N test images.", entry=True)
    image_size: int | None = _field(None, "Resize images to this side (default: as the model needs).", entry=True)
    epochs: int = _field(1, "", entry=True)
    batch_size: int = _field(64, "Batch size per worker.", entry=True)
    lr: float = _field(0.01, "Learning rate.", entry=True)
    seed: int = _field(0, "", entry=True)
    loader_workers: int | None = _field(
        None,
        "DataLoader processes per worker for image folders, COCO folders and your own data sets (default: on a GPU "
        "the worker's CPUs minus one, at most 8; on CPU 0). The in-memory sets need none.",
        entry=True,
        metavar="N",
    )
    precision: str = _field("fp32", f"One of: {_choices(catalog.PRECISIONS)}.", entry=True, choices=catalog.PRECISIONS)
    time_limit: int = _field(60, "Time limit: minutes, HH:MM:SS or D-HH:MM:SS.", flag="--time", metavar="TIME")
    partition: str | None = _field(None, "SLURM partition (default: the profile's).")
    gpu_type: str | None = _field(None, "GPU type for --gres (default: the partition's).")
    job_name: str | None = _field(None, "Job name (default: hpcdl-<strategy>).")
    mem: str | None = _field(None, "Memory per node, e.g. 64G (default: the partition's).", metavar="SIZE")
    exclusive: bool | None = _field(
        None, "Whole nodes, shared with no other job (for timing; default: the profile's).", flag="--exclusive/--shared"
    )
    sbatch: dict[str, str] = _field(
        dict, "Extra sbatch option, e.g. --sbatch account=myproj (repeatable).", metavar="KEY=VALUE"
    )
    # strategy options (None: the strategy's default; each is valid with its strategy only)
    scheduler: str | None = _field(
        None, f"Learning-rate schedule: {_choices(catalog.SCHEDULERS)}.", entry=True, choices=catalog.SCHEDULERS
    )
    compression: str | None = _field(
        None,
        "horovod: allreduce compression, none or fp16.",
        entry=True,
        owners=("horovod",),
        choices=catalog.COMPRESSIONS,
    )
    backward_passes: int | None = _field(
        None, "horovod: backward passes per allreduce (gradient accumulation).", entry=True, owners=("horovod",)
    )
    average: str | None = _field(
        None,
        "psgd: average parameters once at the end, or every K steps.",
        entry=True,
        owners=("psgd",),
        metavar="once|every:K",
    )
    stages: int | None = _field(
        None, "pipeline: stages (one per rank; default: all ranks).", entry=True, owners=("pipeline",)
    )
    microbatches: int | None = _field(
        None, "pipeline: micro-batches per batch (default 4).", entry=True, owners=("pipeline",)
    )
    activation_checkpointing: bool = _field(
        False,
        "ddp, fsdp: recompute each transformer block's activations in the backward pass (less memory, more time).",
        entry=True,
        owners=("ddp", "fsdp"),
    )
    # your own training script instead of hpcdl's entrypoint (hpcdl submit --script train.py -- ARGS)
    script: str | None = _field(
        None, "Your training script, started by the strategy's launcher (arguments after --).", metavar="FILE"
    )
    script_args: tuple[str, ...] = _field((), "The script's arguments.", cli=False)
    folds: int | None = _field(None, "kfold: K.", entry=True, owners=("kfold",), cli=False)
    fold: int | None = _field(None, "kfold: the fold held out (0-based).", entry=True, owners=("kfold",), cli=False)

    def __post_init__(self) -> None:
        if isinstance(self.script_args, (list, tuple)):  # a list from spec.json: frozen, hashable
            object.__setattr__(self, "script_args", tuple(str(a) for a in self.script_args))
        self.validate()

    # -- validation: every invalid field answered by one line naming field, value and what is allowed
    def validate(self) -> None:
        if self.strategy not in strategies.STRATEGIES:
            raise SpecError(f"unknown strategy {self.strategy!r} (choose from {_names(strategies.STRATEGIES)})")
        if self.model not in catalog.MODELS and not byo.is_ref(self.model):
            raise SpecError(f"unknown model {self.model!r} (choose from {_names(catalog.MODELS)}{_own(self.model)})")
        if self.dataset not in catalog.DATASETS and not byo.is_ref(self.dataset):
            raise SpecError(
                f"unknown dataset {self.dataset!r} (choose from {_names(catalog.DATASETS)}{_own(self.dataset)})"
            )
        if self.device not in DEVICES:
            raise SpecError(f"invalid device {self.device!r} (choose from {', '.join(DEVICES)})")
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
        _check_image_size(self.model, self.image_size)
        if self.loader_workers is not None and (
            not isinstance(self.loader_workers, int) or isinstance(self.loader_workers, bool) or self.loader_workers < 0
        ):
            raise SpecError(f"invalid loader-workers: {self.loader_workers!r} (must be an integer >= 0)")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise SpecError(f"invalid seed: {self.seed!r} (must be an integer >= 0)")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not self.lr > 0:
            raise SpecError(f"invalid lr: {self.lr!r} (must be a number > 0)")
        info = catalog.DATASETS.get(self.dataset)
        if info is not None and info.needs_data_root and not self.data_root:
            raise SpecError(f"dataset {self.dataset!r} needs --data-root (a folder that already holds it)")
        self._validate_task()
        strategy = strategies.get(self.strategy)
        if strategy.max_nodes is not None and self.nodes > strategy.max_nodes:
            raise SpecError(
                f"invalid nodes: {self.nodes} (strategy {self.strategy!r} runs on at most {strategy.max_nodes} node)"
            )
        if self.exclusive is not None and not isinstance(self.exclusive, bool):
            raise SpecError(f"invalid exclusive: {self.exclusive!r} (must be true or false)")
        if self.mem is not None and not MEMORY.match(str(self.mem)):
            raise SpecError(f"invalid mem: {self.mem!r} (a size such as 64G, 4000M or 16000)")
        if self.job_name is not None and (not self.job_name or any(ord(c) < 32 or c == "\x7f" for c in self.job_name)):
            raise SpecError(f"invalid job name: {self.job_name!r} (must be non-empty, with no control characters)")
        for key, value in self.sbatch.items():
            if not SBATCH_KEY.fullmatch(key):
                raise SpecError(f"invalid sbatch option {key!r} (use a long option name such as account or qos)")
            if key in DERIVED_SBATCH:
                raise SpecError(f"--sbatch {key} is set by hpcdl from the spec: use {DERIVED_SBATCH[key]}")
            if any(ord(c) < 32 for c in str(value)):
                raise SpecError(f"invalid sbatch option {key}: {value!r} (no control characters)")

        if self.script is not None:
            self._validate_script()
            return
        if self.script_args:
            raise SpecError("script arguments (after --) need --script")
        self._validate_strategy_options()

    def _validate_task(self) -> None:
        """The model and the data set are of one task, and that task trains with this strategy and these
        options: every message comes from the task's entry in catalog.TASKS."""
        model, data = catalog.MODELS.get(self.model), catalog.DATASETS.get(self.dataset)
        own = catalog.TASKS[catalog.DEFAULT_TASK]  # the task your own model or data set trains (byo.py)
        if model is None:
            if data is not None and catalog.TASKS[data.task] is not own:
                names = ", ".join(catalog.models_of(data.task))
                raise SpecError(
                    f"dataset {self.dataset!r} is for {data.task}: choose a {data.task} model ({names}); "
                    f"your own model trains {own.name} data sets"
                )
            return self._refused(own)
        task = catalog.TASKS[model.task]
        if data is None and task is not own:
            names = ", ".join(catalog.datasets_of(task.name))
            raise SpecError(
                f"model {self.model!r} is a {task.name} model: choose a {task.name} dataset ({names}); "
                f"your own data set is for {own.name} models"
            )
        if data is not None and self.dataset not in catalog.datasets_of(task.name):
            if self.model in catalog.models_of(catalog.DEFAULT_TASK):  # a plain model: the data set is the odd one
                names = ", ".join(catalog.models_of(data.task))
                raise SpecError(f"dataset {self.dataset!r} is for {data.task}: choose a {data.task} model ({names})")
            names = ", ".join(catalog.datasets_of(task.name))
            raise SpecError(f"model {self.model!r} is a {task.name} model: choose a {task.name} dataset ({names})")
        if task.strategies is not None and self.strategy not in task.strategies:
            allowed = ", ".join(task.strategies[:-1]) + " or " + task.strategies[-1]
            raise SpecError(f"strategy {self.strategy!r} cannot train {task.name} model {self.model!r} (use {allowed})")
        self._refused(task)

    def _refused(self, task: catalog.TaskInfo) -> None:
        for refusal in task.refuses:
            if getattr(self, refusal.field) not in refusal.neutral:
                flag = "--" + refusal.field.replace("_", "-")
                raise SpecError(f"{flag} does not apply to {task.name} model {self.model!r} ({refusal.why})")

    def _validate_script(self) -> None:
        """--script runs your training: the flags of hpcdl's own training would contradict it."""
        if not isinstance(self.script, str) or not self.script:
            raise SpecError(f"invalid script: {self.script!r} (give a path to your training script)")
        if self.strategy == "kfold":
            raise SpecError("--script does not apply to strategy 'kfold' (hpcdl kfold trains hpcdl's models)")
        for f in entry_fields():
            if getattr(self, f.name) != f.default:
                flag = "--" + f.name.replace("_", "-")
                raise SpecError(f"{flag} does not apply with --script (your script sets it: pass it after --)")

    def _validate_strategy_options(self) -> None:
        for f in spec_fields():
            owners = f.metadata["owners"]
            name = f.name
            if owners and getattr(self, name) not in (None, False) and self.strategy not in owners:
                flag, only = "--" + name.replace("_", "-"), " or ".join(repr(o) for o in owners)
                raise SpecError(f"{flag} applies to strategy {only} only, not {self.strategy!r}")
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
            if self.model not in catalog.MODELS or not catalog.MODELS[self.model].splittable:
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

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> JobSpec:
        """A spec as a run folder recorded it (validated when it was submitted): read back without checking
        it again, so a run stays readable when later rules change; fields it lacks take their defaults."""
        spec = object.__new__(cls)
        for f in dataclasses.fields(cls):
            if f.name in data:
                value = data[f.name]
                value = tuple(value) if isinstance(f.default, tuple) and isinstance(value, list) else value
            else:
                value = f.default_factory() if f.default is dataclasses.MISSING else f.default
            object.__setattr__(spec, f.name, value)
        return spec

    def replace(self, **changes: Any) -> JobSpec:
        return dataclasses.replace(self, **changes)


def spec_fields() -> tuple[dataclasses.Field, ...]:
    """Every JobSpec field with its declaration (see `_field`)."""
    return dataclasses.fields(JobSpec)


def entry_fields() -> tuple[dataclasses.Field, ...]:
    """The fields the entrypoint on the compute node gets, in the order of its command line."""
    return tuple(f for f in spec_fields() if f.metadata["entry"])


@functools.lru_cache(maxsize=1)
def field_types() -> dict[str, type]:
    """Each field's value type (int, float, str or dict), read from its annotation (`X | None` -> X)."""
    import types
    import typing

    out = {}
    for name, hint in typing.get_type_hints(JobSpec).items():
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        out[name] = typing.get_origin(hint) or hint
    return out


def average_every(text: str) -> int | None:
    """'every:K' -> K (K >= 1); anything else -> None."""
    m = re.fullmatch(r"every:(\d+)", text or "")
    return int(m[1]) if m and int(m[1]) >= 1 else None


def _own(name: str) -> str:
    """For a name that looks like an attempt at your own code (dots, a colon): the syntax that works."""
    return ", or your own as package.module:function" if isinstance(name, str) and ("." in name or ":" in name) else ""


def _check_image_size(model: str, size: int | None) -> None:
    """At most the model's tolerant bound (catalog.ModelInfo.max_size); your own model sets its own."""
    info = catalog.MODELS.get(model)
    if info is not None and info.context is not None:  # it reads tokens: its task refuses --image-size
        return
    if size is not None and info is not None and size > info.max_size:
        raise SpecError(
            f"invalid image-size: {size} (model {model!r} takes at most {info.max_size}: "
            f"{catalog.IMAGE_SIZE_TOLERANCE}x the {info.native_size} px side it is built for)"
        )


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"invalid {name}: {value!r} (must be an integer >= 1)")
