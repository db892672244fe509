"""Pipeline parallelism (seed 001): the model cut into one stage per rank, GPipe over micro-batches.

The run's task lays its model out as layers (Task.stages: a classifier's layers, a language model's
embeddings, blocks and tied head), cut into stages balanced by parameter count. torch.distributed.pipelining
runs the stages; every rank reads the same batches (the first stage uses the inputs, the last the
targets), and only the last stage counts samples, loss and accuracy, so the all-reduced figures count
every sample once. The step's loss is the task's (Trainer.loss_fn, per micro-batch mean). A parameter
that several stages hold (a head tied to its embedding) is tied: after each backward its gradients are
summed over those stages (one all-reduce in their own group), so the copies stay equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

from hpc_dl.train import loaders
from hpc_dl.train.entry import Job, run_job
from hpc_dl.train.loop import Trainer
from hpc_dl.train.setup import Setup, task_of


def split(seq: list[nn.Module], stages: int) -> list[nn.Sequential]:
    """Consecutive groups with about equal parameter counts, at least one layer each."""
    if len(seq) < stages:
        raise ValueError(f"{len(seq)} layers cannot make {stages} stages")
    sizes = [sum(p.numel() for p in m.parameters()) for m in seq]
    total, cuts, acc = sum(sizes), [], 0
    for i, size in enumerate(sizes[:-1]):
        acc += size
        left_layers, left_cuts = len(seq) - (i + 1), stages - 1 - len(cuts)
        if left_cuts and (acc >= total * (len(cuts) + 1) / stages or left_layers == left_cuts):
            cuts.append(i + 1)
    bounds = [0, *cuts, len(seq)]
    return [nn.Sequential(*seq[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


def tied(parts: list[nn.Module]) -> list[tuple[nn.Parameter, tuple[int, ...]]]:
    """Each parameter more than one stage holds, with the stages that hold it (the same on every rank)."""
    holders: dict[int, tuple[nn.Parameter, list[int]]] = {}
    for i, part in enumerate(parts):
        for p in part.parameters():
            holders.setdefault(id(p), (p, []))[1].append(i)
    return [(p, tuple(ranks)) for p, ranks in holders.values() if len(ranks) > 1]


def tie_groups(ties: list[tuple[nn.Parameter, tuple[int, ...]]], rank: int) -> list[tuple[nn.Parameter, object]]:
    """This rank's tied parameters, each with the process group of the stages that hold it. Every rank
    makes every group, in the same order (dist.new_group is collective)."""
    groups = {ranks: dist.new_group(list(ranks)) for ranks in sorted({r for _, r in ties})}
    return [(p, groups[ranks]) for p, ranks in ties if rank in ranks]


@dataclass
class PipelineTrainer(Trainer):
    ties: list = field(default_factory=list)  # (parameter, group): this stage's tied parameters (tie_groups)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.first = self.env.rank == 0
        self.last = self.env.rank == self.env.world_size - 1
        stage = PipelineStage(self.model, self.env.rank, self.env.world_size, self.env.device)
        n = self.cfg.microbatches or 4
        self.schedule = ScheduleGPipe(stage, n_microbatches=n, loss_fn=lambda out, y: self.loss_fn(out, y) / len(y))

    def _stage_args(self, x, y, losses: list) -> tuple[tuple, dict]:
        """What this rank's stage passes the schedule: the inputs on the first, the targets and a list for
        the micro-batches' losses on the last."""
        return ((x,) if self.first else ()), ({"target": y, "losses": losses} if self.last else {})

    def _run_batch(self, x, y):
        self.optimizer.zero_grad()
        losses: list[torch.Tensor] = []
        args, kwargs = self._stage_args(x, y, losses)
        with self.autocast():
            out = self.schedule.step(*args, **kwargs)
        for p, group in self.ties:  # the stages' copies of a tied parameter get the same, summed gradient
            dist.all_reduce(p.grad, group=group)
        self.optimizer.step()
        if not self.last:
            return 0.0, 0, 0
        loss = torch.stack([x.detach() for x in losses]).mean() * len(y)
        return loss, self.correct(out, y), len(y)

    def _eval_batch(self, x, y):
        """The batch through every stage; only the last stage counts it, so every sample counts once."""
        losses: list[torch.Tensor] = []
        args, kwargs = self._stage_args(x, y, losses)
        with self.autocast():
            out = self.schedule.eval(*args, **kwargs)
        if not self.last:
            return 0.0, 0, 0
        return float(torch.stack(losses).mean()) * len(y), int(self.correct(out, y)), len(y)

    def gather_state(self):
        stages = [None] * self.env.world_size if self.env.is_main else None
        dist.gather_object(self.own_state(), stages, dst=0)
        return {"stages": stages} if self.env.is_main else None

    def restore_state(self, state):
        super().restore_state(state["stages"][self.env.rank])


def body(job: Job) -> None:
    cfg, env = job.cfg, job.env
    torch.manual_seed(cfg.seed)  # every rank builds the same model, then keeps its stage
    task = task_of(cfg)
    ds = task.load_data(cfg)
    parts = split(task.stages(cfg, task.build_model(cfg, ds)), env.world_size)
    ties = tie_groups(tied(parts), env.rank)
    stage = parts[env.rank].to(env.device)
    # every stage sees the same batches, whole ones (micro-batch shapes stay fixed)
    dev, workers = env.device, cfg.loader_workers
    train, sampler = loaders.train_loader(ds, cfg.batch_size, 0, 1, cfg.seed, dev, workers=workers, drop_last=True)
    test = loaders.loader(ds.test, ds.collate, cfg.batch_size, dev, workers, drop_last=True)
    info = {
        "stages": env.world_size,
        "microbatches": cfg.microbatches or 4,
        "stage_layers": [len(p) for p in parts],
        "tied_parameters": len(tied(parts)),
        "global_batch_size": cfg.batch_size,
    }
    job.train(Setup(ds, stage, train, sampler, test, task), trainer=PipelineTrainer, info=info, ties=ties)


def main(argv: list[str] | None = None) -> int:
    return run_job("pipeline", argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
