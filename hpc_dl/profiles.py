"""ClusterProfile: where to run (scheduler, partitions, GPUs, modules, environment), from YAML.

Shipped profiles live in hpc_dl/data/profiles/; a user's own go in $HPCDL_PROFILES or
~/.config/hpcdl/profiles/ and win over shipped ones of the same name. Every error names the file,
the line, the field, the value and what is allowed.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import backends
from .errors import ProfileError, SpecError
from .spec import JobSpec
from .units import SBATCH_KEY, format_time, parse_time

SHIPPED_DIR = Path(__file__).parent / "data" / "profiles"
SCHEDULERS = backends.NAMES
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def user_dir() -> Path:
    env = os.environ.get("HPCDL_PROFILES")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "hpcdl" / "profiles"


@dataclass(frozen=True)
class Partition:
    name: str
    max_nodes: int
    gpus_per_node: int  # 0: a CPU partition
    max_time: int  # minutes
    gpu_types: tuple[str, ...] = ()
    default_gpu_type: str | None = None


@dataclass(frozen=True)
class ClusterProfile:
    name: str
    scheduler: str
    description: str
    partitions: dict[str, Partition]
    default_partition: str
    python: str | None = None  # interpreter on the compute nodes; None: the one running hpcdl
    modules: tuple[str, ...] = ()  # `module load` lines
    setup: tuple[str, ...] = ()  # shell lines run before the launch (conda/venv activation); trusted
    env: dict[str, str] = field(default_factory=dict)  # exported, values quoted
    pythonpath: tuple[str, ...] = ()  # folders exported as PYTHONPATH (your own models, data sets)
    cpus_per_task: int = 1  # default for specs that do not say
    sbatch: dict[str, str] = field(default_factory=dict)  # default extra sbatch options (account, qos, …)
    exclusive: bool = False  # default for specs that do not say: whole nodes (a profile for timing studies)
    source: str = "<builtin>"

    @property
    def backend(self) -> backends.Backend:
        """The scheduler's backend: what it can run, its options, its queries (hpc_dl/backends/)."""
        return backends.get(self.scheduler)

    # -- the spec against this cluster
    def partition_for(self, spec: JobSpec) -> Partition:
        name = spec.partition or self.default_partition
        if name not in self.partitions:
            choices = ", ".join(sorted(self.partitions))
            raise SpecError(f"unknown partition {name!r} for profile {self.name!r} (choose from {choices})")
        return self.partitions[name]

    def exclusive_for(self, spec: JobSpec) -> bool:
        """Whether the spec's job asks for whole nodes: its own --exclusive/--shared, else this profile's."""
        return spec.exclusive if spec.exclusive is not None else self.exclusive

    def check(self, spec: JobSpec) -> Partition:
        """Raise SpecError if the spec does not fit this cluster; return the partition it runs on."""
        part = self.partition_for(spec)
        self.backend.check(spec, part, self.name)
        if spec.exclusive and not self.backend.reserves_nodes:
            raise SpecError(
                f"invalid exclusive: scheduler {self.scheduler!r} of profile {self.name!r} cannot reserve whole "
                "nodes (use a SLURM profile, or leave --exclusive out)"
            )
        if spec.nodes > part.max_nodes:
            raise SpecError(
                f"invalid nodes: {spec.nodes} (partition {part.name!r} of profile {self.name!r} allows at most "
                f"{part.max_nodes}){self._fits_elsewhere(spec)}"
            )
        if part.gpus_per_node > 0 and spec.gpus > part.gpus_per_node:
            raise SpecError(
                f"invalid gpus: {spec.gpus} (partition {part.name!r} of profile {self.name!r} has "
                f"{part.gpus_per_node} GPUs per node){self._fits_elsewhere(spec)}"
            )
        if spec.time_limit > part.max_time:
            raise SpecError(
                f"invalid time limit: {format_time(spec.time_limit)} (partition {part.name!r} allows at most "
                f"{format_time(part.max_time)}){self._fits_elsewhere(spec)}"
            )
        if spec.gpu_type is not None:
            if part.gpus_per_node == 0 or spec.gpu_type not in part.gpu_types:
                allowed = ", ".join(part.gpu_types) or "none: it has no GPUs"
                raise SpecError(f"invalid gpu type: {spec.gpu_type!r} (partition {part.name!r} has {allowed})")
        if spec.precision == "fp16" and not self.has_gpus(part, spec.device):
            where = "the workers are CPU processes" if spec.device == "cpu" else f"partition {part.name!r} has no GPUs"
            raise SpecError(f"invalid precision: 'fp16' ({where}; use fp32 or bf16 on CPUs)")
        return part

    def _fits_elsewhere(self, spec: JobSpec) -> str:
        """Where no partition was asked for: the partitions whose limits the shape fits, as advice."""
        if spec.partition is not None or not self.backend.advises_partitions:
            return ""
        fits = [
            p
            for p in self.partitions.values()
            if spec.nodes <= p.max_nodes
            and spec.time_limit <= p.max_time
            and (spec.gpus <= p.gpus_per_node if p.gpus_per_node > 0 else True)
        ]
        fits = [p.name for p in ([p for p in fits if p.gpus_per_node > 0] or fits)]  # GPU partitions first
        return f"; it fits partition {' or '.join(repr(n) for n in fits)}: add --partition {fits[0]}" if fits else ""

    def has_gpus(self, part: Partition, device: str = "auto") -> bool:
        """Whether the job's workers are GPUs: a GPU partition, or on this machine, visible GPUs."""
        return self.backend.has_gpus(part, device)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scheduler": self.scheduler,
            "description": self.description,
            "default_partition": self.default_partition,
            "python": self.python,
            "modules": list(self.modules),
            "setup": list(self.setup),
            "env": dict(self.env),
            "pythonpath": list(self.pythonpath),
            "cpus_per_task": self.cpus_per_task,
            "sbatch": dict(self.sbatch),
            "exclusive": self.exclusive,
            "partitions": {
                p.name: {
                    "max_nodes": p.max_nodes,
                    "gpus_per_node": p.gpus_per_node,
                    "max_time": format_time(p.max_time),
                    "gpu_types": list(p.gpu_types),
                    "default_gpu_type": p.default_gpu_type,
                }
                for p in self.partitions.values()
            },
            "source": self.source,
        }


# ----------------------------------------------------------------------------------------------------------
# finding and loading


def available() -> dict[str, Path]:
    """Profile name -> file; a user's profile shadows a shipped one of the same name."""
    found = {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.yaml"))}
    udir = user_dir()
    if udir.is_dir():
        found.update({p.stem: p for p in sorted(udir.glob("*.yaml"))})
    return dict(sorted(found.items()))


def default_name() -> str:
    """`local` when this machine has no sbatch, else $HPCDL_PROFILE or `discovery`."""
    if shutil.which("sbatch") is None:
        return "local"
    return os.environ.get("HPCDL_PROFILE") or "discovery"


def load(name: str | None = None) -> ClusterProfile:
    name = name or default_name()
    files = available()
    if name not in files:
        raise ProfileError(
            f"unknown profile {name!r} (choose from {', '.join(files)}; user profiles go in {user_dir()})"
        )
    return load_file(files[name])


def load_file(path: Path) -> ClusterProfile:
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProfileError(f"{where}: malformed YAML: {problem}") from None
    lines = _key_lines(root)
    return _build(path, data, lines)


def _key_lines(node, prefix: tuple = ()) -> dict[tuple, int]:
    import yaml

    out: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = prefix + (str(key.value),)
            out[path] = key.start_mark.line + 1
            out.update(_key_lines(value, path))
    return out


class _Fields:
    """Reads one YAML mapping; every complaint carries file:line and the dotted field name."""

    def __init__(self, path: Path, data: Any, lines: dict[tuple, int], prefix: tuple = ()):
        self.path, self.lines, self.prefix = path, lines, prefix
        if not isinstance(data, dict):
            self.fail((), f"{data!r} is invalid (must be a mapping of fields)")
        self.data = data

    def fail(self, key: tuple, message: str) -> None:
        full = self.prefix + key
        line = None
        for n in range(len(full), -1, -1):
            line = self.lines.get(full[:n])
            if line:
                break
        where = f"{self.path}:{line}" if line else str(self.path)
        field_name = ".".join(full) if full else "profile"
        raise ProfileError(f"{where}: {field_name}: {message}")

    def only(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                self.fail((str(key),), f"unknown field (known: {', '.join(sorted(allowed))})")

    def get(self, key: str, kind: str, default: Any = ..., choices: tuple = ()) -> Any:
        if key not in self.data or self.data[key] is None:
            if default is ...:
                self.fail((key,), "is required")
            return default
        value = self.data[key]
        ok = {
            "str": isinstance(value, str) and value != "",
            "int>=0": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
            "int>=1": isinstance(value, int) and not isinstance(value, bool) and value >= 1,
            "strlist": isinstance(value, list) and all(isinstance(v, str) and v for v in value),
            "strmap": isinstance(value, dict) and all(isinstance(v, (str, int, float)) for v in value.values()),
            "map": isinstance(value, dict) and len(value) > 0,
            "time": isinstance(value, (str, int)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
        }[kind]
        if not ok:
            expected = {
                "str": "a non-empty string",
                "int>=0": "an integer >= 0",
                "int>=1": "an integer >= 1",
                "strlist": "a list of strings",
                "strmap": "a mapping of names to strings",
                "map": "a non-empty mapping",
                "time": "a time such as 60, 08:00:00 or 1-00:00:00",
                "bool": "true or false",
            }[kind]
            self.fail((key,), f"{value!r} is invalid (must be {expected})")
        if choices and value not in choices:
            self.fail((key,), f"{value!r} is invalid (choose from {', '.join(choices)})")
        if kind == "time":
            try:
                return parse_time(value)
            except SpecError:
                self.fail((key,), f"{value!r} is invalid (must be a time such as 60, 08:00:00 or 1-00:00:00)")
        return value

    def sub(self, key: str) -> _Fields:
        return _Fields(self.path, self.data[key], self.lines, self.prefix + (key,))


def _build(path: Path, data: Any, lines: dict[tuple, int]) -> ClusterProfile:
    top = _Fields(path, data, lines)
    top.only(
        {
            "name",
            "scheduler",
            "description",
            "partitions",
            "default_partition",
            "python",
            "modules",
            "setup",
            "env",
            "pythonpath",
            "cpus_per_task",
            "sbatch",
            "exclusive",
        }
    )
    name = top.get("name", "str", default=path.stem)
    scheduler = top.get("scheduler", "str", choices=SCHEDULERS)
    top.get("partitions", "map")
    parts_f = top.sub("partitions")
    partitions = {str(pname): _partition(parts_f.sub(str(pname)), str(pname)) for pname in parts_f.data}
    default_partition = top.get("default_partition", "str", default=next(iter(partitions)))
    if default_partition not in partitions:
        top.fail(("default_partition",), f"{default_partition!r} is invalid (choose from {', '.join(partitions)})")
    sbatch = _named_map(top, "sbatch", SBATCH_KEY, "a long sbatch option such as account or qos")
    env = _named_map(top, "env", _ENV_KEY, "a shell variable name")
    exclusive = top.get("exclusive", "bool", default=False)
    if exclusive and not backends.get(scheduler).reserves_nodes:
        top.fail(("exclusive",), f"true is invalid (scheduler {scheduler!r} cannot reserve whole nodes)")
    return ClusterProfile(
        name=name,
        scheduler=scheduler,
        description=top.get("description", "str", default=""),
        partitions=partitions,
        default_partition=default_partition,
        python=top.get("python", "str", default=None),
        modules=tuple(top.get("modules", "strlist", default=[])),
        setup=tuple(top.get("setup", "strlist", default=[])),
        env=env,
        pythonpath=_pythonpath(top),
        cpus_per_task=top.get("cpus_per_task", "int>=1", default=1),
        sbatch=sbatch,
        exclusive=exclusive,
        source=str(path),
    )


def _partition(pf: _Fields, name: str) -> Partition:
    pf.only({"max_nodes", "gpus_per_node", "max_time", "gpu_types", "default_gpu_type"})
    gpu_types = tuple(pf.get("gpu_types", "strlist", default=[]))
    default_type = pf.get("default_gpu_type", "str", default=gpu_types[0] if gpu_types else None)
    if default_type is not None and default_type not in gpu_types:
        pf.fail(
            ("default_gpu_type",),
            f"{default_type!r} is invalid (choose from {', '.join(gpu_types) or 'gpu_types, which is empty'})",
        )
    return Partition(
        name=name,
        max_nodes=pf.get("max_nodes", "int>=1"),
        gpus_per_node=pf.get("gpus_per_node", "int>=0"),
        max_time=pf.get("max_time", "time"),
        gpu_types=gpu_types,
        default_gpu_type=default_type,
    )


def _named_map(top: _Fields, key: str, valid: re.Pattern, must_be: str) -> dict[str, str]:
    """A mapping whose keys end up as option or variable names in the script: each key must be one."""
    values = {str(k): str(v) for k, v in top.get(key, "strmap", default={}).items()}
    for name in values:
        if not valid.fullmatch(name):
            top.sub(key).fail((name,), f"is invalid (must be {must_be})")
    return values


def _pythonpath(top: _Fields) -> tuple[str, ...]:
    """Folders for PYTHONPATH: absolute (or ~) paths, as the compute node sees them."""
    folders = tuple(top.get("pythonpath", "strlist", default=[]))
    for folder in folders:
        if not folder.startswith(("/", "~")) or ":" in folder:
            top.fail(("pythonpath",), f"{folder!r} is invalid (must be an absolute folder, without ':')")
    return folders
