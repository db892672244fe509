"""Registry: strategy name -> launcher template, entrypoint module and task layout.

Cheap to import (no torch). Each strategy is one small entrypoint in jobs/ plus one launcher
template in sbatch_templates/; everything else (spec, profile, rendering, submission, collect)
is shared.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    name: str
    template: str  # launcher template in sbatch_templates/
    entrypoint: str  # python module the launcher starts on every worker
    description: str
    max_nodes: int | None = None  # None: any number of nodes
    # How SLURM lays out tasks: "node" = one launcher task per node that starts the workers
    # (torchrun, horovodrun); "worker" = one task per worker (srun/mpirun start them all).
    tasks: str = "node"


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in [
        Strategy(
            name="ddp",
            template="torchrun.sh.j2",
            entrypoint="hpc_dl.jobs.ddp",
            description="torch DistributedDataParallel, one process per GPU, launched by torchrun",
        ),
    ]
}


def get(name: str) -> Strategy:
    return STRATEGIES[name]
