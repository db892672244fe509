"""The Task interface: what one kind of training fills in, so that nothing outside its folder asks which it is.

A task (torchvision's references/<task>/ is the model: one folder per task over shared utilities) builds
its model and its data set, batches them, lays the model out as layers for pipeline stages, names the
trainer class it trains with on the shared loop (train/loop.py: the step, the evaluation, the epoch
stats), wraps a model for nn.DataParallel, and turns a run's checkpoint into what `hpcdl serve` shows.
Its facts that the login node needs (the strategies that can train it, its metrics with their names,
what its throughput counts) are its TaskInfo in catalog.TASKS, which is also the registry:
`hpc_dl.train.tasks.get(name)` loads the class it names.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ... import catalog

if TYPE_CHECKING:
    from torch import nn

    from ...runs import RunDir
    from ..config import TrainConfig
    from ..data import Data
    from ..loop import Trainer


class Served(Protocol):
    """A run's checkpoint ready to answer on the serve page (hpc_dl/serve/page.py lays it out)."""

    run: RunDir
    spec: dict
    epoch: int
    device: Any
    task: str  # its task's name
    chart: tuple[str, tuple[str, ...]]  # the training curve the page draws: caption, the curves' keys

    @property
    def checkpoint(self) -> Path: ...

    def view(self, ui: Any) -> None:
        """Lay out the inputs and the model's answers with the page's `ui` (Streamlit as ui.st, pandas as
        ui.pd, and the page's own widgets: ui.uploads, ui.answered)."""


class Task(abc.ABC):
    """One kind of training. Subclasses live in hpc_dl/train/tasks/<name>/ and are registered in catalog.TASKS."""

    name: ClassVar[str]  # its key in catalog.TASKS

    @property
    def info(self) -> catalog.TaskInfo:
        """Its declared facts: metrics (names, headers, tags), throughput unit, the strategies that can train it."""
        return catalog.TASKS[self.name]

    # -- the model and the data
    @abc.abstractmethod
    def load_data(self, cfg: TrainConfig) -> Data:
        """The configured data set, whole (each strategy shards or splits it its own way), with its collate."""

    @abc.abstractmethod
    def build_model(self, cfg: TrainConfig, data: Data) -> nn.Module:
        """The configured model, untrained and on the CPU, for that data (its classes, channels, image side)."""

    def loaders(self, data: Data, batch_size: int, rank: int, world_size: int, seed: int, device, workers):
        """(train loader, its sampler, test loader) of this rank's shards, batched by data.collate."""
        from .. import loaders

        train, sampler = loaders.train_loader(data, batch_size, rank, world_size, seed, device, workers=workers)
        return train, sampler, loaders.test_loader(data, batch_size, rank, world_size, device, workers=workers)

    def stages(self, cfg: TrainConfig, model: nn.Module) -> list[nn.Module]:
        """The model as a plain sequence of layers (what its forward does, in order) for the pipeline to cut
        into stages; ValueError where it cannot be cut (catalog.ModelInfo.splittable says so at submit). A
        parameter two layers share (a head tied to its embedding) stays one parameter: the pipeline sums
        its gradients over the stages that hold it."""
        raise ValueError(f"model {cfg.model!r} cannot be split into pipeline stages")

    # -- the step, the evaluation, the metrics
    def trainer(self, base: type[Trainer]) -> type[Trainer]:
        """The trainer class it trains with for a strategy's trainer `base`: base itself where the shared
        loop's own step fits (cross-entropy over logits, top-1 accuracy), else its own Trainer subclass
        (the step, the evaluation, the epoch stats and their log lines) over base: `over(Mine, base)`."""
        return base

    def data_parallel(self, model: nn.Module, device_ids: list[int] | None) -> nn.Module:
        """The model under nn.DataParallel (dp), which must know how to cut this task's batches."""
        from torch import nn

        return nn.DataParallel(model, device_ids=device_ids)

    # -- serving
    @abc.abstractmethod
    def predictor(self, run: RunDir, spec: dict, weights: dict, epoch: int, device) -> Served:
        """The run's checkpointed model (its state_dict `weights`, after `epoch`) on `device`, as the
        serve page shows it; NotServable (one line) when the weights do not fit the model."""


def over(steps: type[Trainer], base: type[Trainer]) -> type[Trainer]:
    """A task's Trainer subclass `steps` over a strategy's trainer `base`: the task's step and evaluation
    first, then base's own state and optimizer handling (fsdp's gathering, horovod's optimizer)."""
    if issubclass(base, steps):
        return base
    if issubclass(steps, base):  # base is the shared loop itself
        return steps
    return type(f"{steps.__name__.removesuffix('Trainer')}{base.__name__}", (steps, base), {})


def fitted(model, weights: dict, run_id: str, name: str, device):
    """A served model with its checkpoint's weights, on `device`, in eval mode; weights that do not fit the
    model are one line (every task's serve loads this way)."""
    from ...errors import NotServable

    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        text = " ".join(str(exc).split())[:200]
        raise NotServable(f"run {run_id}: checkpoint does not fit model {name}: {text}") from None
    return model.to(device).eval()
