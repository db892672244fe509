"""Registry: strategy name -> launcher template, entrypoint module, task layout and what it needs.

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
    entrypoint: str  # python module the launcher starts
    description: str
    max_nodes: int | None = None  # None: any number of nodes
    # How SLURM lays out tasks: "node" = one launcher task per node that starts the workers
    # (torchrun, horovodrun, one python process); "worker" = one task per worker (mpirun starts them all).
    tasks: str = "node"
    needs_module: str | None = None  # a python module the job imports (checked where the job's python is ours)
    needs_program: str | None = None  # a program the launcher runs (checked on the local profile)
    install_hint: str = ""


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in [
        Strategy(
            "ddp",
            "torchrun.sh.j2",
            "hpc_dl.jobs.ddp",
            "torch DistributedDataParallel, one process per GPU, launched by torchrun",
        ),
        Strategy(
            "fsdp",
            "torchrun.sh.j2",
            "hpc_dl.jobs.fsdp",
            "PyTorch fully-sharded data parallel (fully_shard), launched by torchrun",
        ),
        Strategy(
            "pipeline",
            "torchrun.sh.j2",
            "hpc_dl.jobs.pipeline",
            "torch.distributed.pipelining: one model stage per rank, GPipe micro-batches",
        ),
        Strategy(
            "dp", "python.sh.j2", "hpc_dl.jobs.dp", "nn.DataParallel: one process over the node's GPUs", max_nodes=1
        ),
        Strategy(
            "hogwild",
            "python.sh.j2",
            "hpc_dl.jobs.hogwild",
            "Hogwild: worker processes update one shared-memory model without locks",
            max_nodes=1,
        ),
        Strategy(
            "psgd",
            "mpirun.sh.j2",
            "hpc_dl.jobs.psgd",
            "parallel SGD with MPI parameter averaging (mpi4py), launched by mpirun",
            tasks="worker",
            needs_module="mpi4py",
            needs_program="mpirun",
            install_hint="install OpenMPI (Debian: openmpi-bin libopenmpi-dev; make does) and mpi4py",
        ),
        Strategy(
            "horovod",
            "horovodrun.sh.j2",
            "hpc_dl.jobs.horovod",
            "Horovod allreduce (optionally fp16-compressed), launched by horovodrun",
            needs_module="horovod.torch",
            needs_program="horovodrun",
            install_hint="run `make horovod` (builds Horovod 0.28.1 against this torch once, ~6 min)",
        ),
        Strategy(
            "kfold",
            "python.sh.j2",
            "hpc_dl.jobs.kfold",
            "one fold of K-fold cross-validation (hpcdl kfold submits them all as one array)",
            max_nodes=1,
        ),
    ]
}


def get(name: str) -> Strategy:
    return STRATEGIES[name]
