"""The one preamble every job shares, so that a job module is only its distributed part.

A job's `main(argv)` is `run_job(strategy, argv, body)`: the worker's command line becomes a TrainConfig,
the distributed environment is read (from RANK/WORLD_SIZE, or a launcher's own: Horovod, MPI), the
process group is joined, and the body runs under run_main (events open, a failure recorded as run_stop).
The body gets a Job and trains with `job.train(...)`, the shared loop or a strategy's subclass of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .config import TrainConfig, config_from, parser
from .env import DistEnv
from .events import Events
from .loop import Trainer, run_main
from .setup import Setup, sgd


@dataclass
class Job:
    """What a job's body works with: its strategy, configuration, environment and open events."""

    strategy: str
    cfg: TrainConfig
    env: DistEnv
    events: Events

    def train(
        self,
        s: Setup,
        model: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        trainer: type[Trainer] = Trainer,
        **options,
    ) -> dict:
        """Train s's model (or its wrapped `model`) on s's loaders with the task's version of the strategy's
        trainer; SGD over its parameters unless the strategy brings its own optimizer. `options` go to the
        trainer (info, amp)."""
        trainer = s.task.trainer(trainer)
        model = s.model if model is None else model
        optimizer = sgd(model.parameters(), self.cfg) if optimizer is None else optimizer
        return trainer(
            self.cfg, self.env, self.events, self.strategy, model, optimizer, s.train, s.sampler, s.test, **options
        ).train()


def job_config(strategy: str, argv: list[str] | None) -> TrainConfig:
    """The worker's command line (what hpc_dl.render.entry_args wrote) as a TrainConfig."""
    return config_from(parser(strategy).parse_args(argv))


def run_job(
    strategy: str,
    argv: list[str] | None,
    body: Callable[[Job], object],
    environ: Callable[[], DistEnv] = DistEnv.from_environ,
) -> int:
    """A job's main: parse, read the environment, then run_in."""
    return run_in(strategy, job_config(strategy, argv), environ(), body)


def run_in(strategy: str, cfg: TrainConfig, env: DistEnv, body: Callable[[Job], object]) -> int:
    """Join the process group and run the body with events open (for workers a job starts itself)."""
    env.init_process_group()
    return run_main(strategy, cfg, env, lambda events: body(Job(strategy, cfg, env, events)))
