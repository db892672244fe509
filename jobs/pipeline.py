"""Pipeline parallelism (seed 001): the model cut into one stage per rank, GPipe over micro-batches.

torch.distributed.pipelining runs the stages; every rank reads the same batches (the first stage uses
the images, the last the labels), and only the last stage counts samples, loss and accuracy, so the
all-reduced figures count every image once. Stages are balanced by parameter count.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

from hpc_dl.train import loaders
from hpc_dl.train.entry import Job, run_job
from hpc_dl.train.loop import Trainer
from hpc_dl.train.setup import Setup, task_of


def layers(name: str, model: nn.Module) -> list[nn.Module]:
    """The model as a plain sequence of layers (what forward does, in order)."""
    if name == "mnist-cnn":
        return [*model.features, *model.classifier]
    if name.startswith("resnet"):
        return [
            model.conv1,
            model.bn1,
            model.relu,
            model.maxpool,
            model.layer1,
            model.layer2,
            model.layer3,
            model.layer4,
            model.avgpool,
            nn.Flatten(),
            model.fc,
        ]
    if name.startswith("vgg") or name == "alexnet":
        return [*model.features, model.avgpool, nn.Flatten(), *model.classifier]
    if name == "mobilenet_v2":
        return [*model.features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), *model.classifier]
    raise ValueError(f"model {name!r} cannot be split into pipeline stages")


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


class PipelineTrainer(Trainer):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.first = self.env.rank == 0
        self.last = self.env.rank == self.env.world_size - 1
        stage = PipelineStage(self.model, self.env.rank, self.env.world_size, self.env.device)
        self.schedule = ScheduleGPipe(stage, n_microbatches=self.cfg.microbatches or 4, loss_fn=nn.CrossEntropyLoss())

    def _run_batch(self, x, y):
        self.optimizer.zero_grad()
        losses: list[torch.Tensor] = []
        with self.autocast():
            if self.first:
                out = self.schedule.step(x, target=y if self.last else None, losses=losses)
            elif self.last:
                out = self.schedule.step(target=y, losses=losses)
            else:
                out = self.schedule.step()
        self.optimizer.step()
        if not self.last:
            return 0.0, 0, 0
        loss = torch.stack([x.detach() for x in losses]).mean() * len(y)
        return loss, (out.argmax(1) == y).sum(), len(y)

    def _eval_batch(self, x, y):
        """The batch through every stage; only the last stage counts it, so every image counts once."""
        if self.first:
            self.schedule.eval(x)
            return 0.0, 0, 0
        if not self.last:
            self.schedule.eval()
            return 0.0, 0, 0
        losses: list[torch.Tensor] = []
        out = self.schedule.eval(target=y, losses=losses)
        return float(torch.stack(losses).mean()) * len(y), int((out.argmax(1) == y).sum()), len(y)

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
    parts = split(layers(cfg.model, task.build_model(cfg, ds)), env.world_size)
    stage = parts[env.rank].to(env.device)
    # every stage sees the same batches, whole ones (micro-batch shapes stay fixed)
    dev, workers = env.device, cfg.loader_workers
    train, sampler = loaders.train_loader(ds, cfg.batch_size, 0, 1, cfg.seed, dev, workers=workers, drop_last=True)
    test = loaders.loader(ds.test, ds.collate, cfg.batch_size, dev, workers, drop_last=True)
    info = {
        "stages": env.world_size,
        "microbatches": cfg.microbatches or 4,
        "stage_layers": [len(p) for p in parts],
        "global_batch_size": cfg.batch_size,
    }
    job.train(Setup(ds, stage, train, sampler, test, task), trainer=PipelineTrainer, info=info)


def main(argv: list[str] | None = None) -> int:
    return run_job("pipeline", argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
