"""What a job held while it ran, as the job wrapper records it in exit.json (`allocation`): the one
declaration of those fields, read back by collect (resource-hours, idle units, measurement context).

On SLURM the allocation is SLURM's own word, from the job's environment: SLURM_JOB_NUM_NODES,
SLURM_JOB_NODELIST (expanded), SLURM_GPUS_ON_NODE and SLURM_JOB_CPUS_PER_NODE. In a sweep every array
task is given the largest point's shape, so a small point's record shows the GPUs or cores it held and
left idle. Elsewhere (the local profile) it is what the run asked for: one node, this host, its workers'
GPUs (or, for CPU workers, their threads as cores); nothing reserves the machine, so never exclusive.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Allocation:
    nodes: int
    node_names: tuple[str, ...]
    gpus: int  # GPUs held, all nodes together
    cpus: int  # cores held, all nodes together
    exclusive: bool  # whole nodes (sbatch --exclusive): no other job shared them
    source: str  # "slurm": the scheduler's environment; "asked": what the run asked (no scheduler)

    @property
    def resource(self) -> str:
        """What the allocation is counted in: GPUs where it held any, else CPU cores."""
        return "gpu" if self.gpus > 0 else "cpu"

    @property
    def units(self) -> int:
        return self.gpus if self.gpus > 0 else self.cpus

    def to_dict(self) -> dict:
        return {**asdict(self), "node_names": list(self.node_names)}

    @classmethod
    def from_record(cls, record) -> Allocation | None:
        """An exit record's allocation, or None where it has none (a run from before this record)."""
        if not isinstance(record, Mapping) or not all(f.name in record for f in fields(cls)):
            return None
        try:
            return cls(
                nodes=int(record["nodes"]),
                node_names=tuple(str(n) for n in record["node_names"]),
                gpus=int(record["gpus"]),
                cpus=int(record["cpus"]),
                exclusive=bool(record["exclusive"]),
                source=str(record["source"]),
            )
        except (TypeError, ValueError):
            return None


def from_environ(environ: Mapping[str, str], gpus: int, cpus: int, exclusive: bool) -> Allocation:
    """The job's allocation: SLURM's where the job runs under SLURM, else (gpus, cpus) as the run asked."""
    if not environ.get("SLURM_JOB_ID"):
        return Allocation(1, (socket.gethostname(),), gpus, cpus, False, "asked")
    nodes = _int(environ.get("SLURM_JOB_NUM_NODES") or environ.get("SLURM_NNODES"), 1)
    names = tuple(expand_hostlist(environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST") or ""))
    per_node_gpus = _int(environ.get("SLURM_GPUS_ON_NODE"), 0)
    cores = cpus_per_node(environ.get("SLURM_JOB_CPUS_PER_NODE") or "")
    if cores is None:
        cores = _int(environ.get("SLURM_CPUS_ON_NODE"), 0) * nodes
    return Allocation(nodes, names, per_node_gpus * nodes, cores, exclusive, "slurm")


def cpus_per_node(text: str) -> int | None:
    """SLURM_JOB_CPUS_PER_NODE ('4(x2),2': two nodes of 4 and one of 2) as the total, or None."""
    total, seen = 0, False
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if not m:
            return None
        total += int(m[1]) * int(m[2] or 1)
        seen = True
    return total if seen else None


def expand_hostlist(text: str) -> list[str]:
    """SLURM's compressed host list ('n[1-3,7],gpu01') as names, in order, without asking scontrol."""
    names: list[str] = []
    for m in re.finditer(r"([^,\[]+)(?:\[([^\]]*)\])?([^,\[]*)", text):
        prefix, ranges, suffix = m[1], m[2], m[3]
        if ranges is None:
            names.append(prefix + suffix)
            continue
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            for i in range(int(lo), int(hi or lo) + 1):
                names.append(f"{prefix}{str(i).zfill(len(lo))}{suffix}")
    return [n for n in names if n]


def _int(value, default: int) -> int:
    try:
        return int(str(value).split("(")[0])
    except (TypeError, ValueError):
        return default


def of_run(run, environ: Mapping[str, str]) -> Allocation:
    """The allocation of a run's job (`run` a RunDir): SLURM's, or what its spec and profile asked for."""
    from .. import devices
    from ..runs import read_json
    from ..spec import JobSpec

    spec = run.read_spec() or JobSpec()
    threads = spec.cpus_per_task or int((read_json(run.profile) or {}).get("cpus_per_task") or 1)
    gpus = spec.world_size if spec.device != "cpu" and devices.visible_gpus() else 0
    return from_environ(environ, gpus, spec.world_size * threads, bool(spec.exclusive))
