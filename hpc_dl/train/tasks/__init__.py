"""The tasks hpcdl trains, one folder each (classification/, detection/), each filling base.Task.

catalog.TASKS is the registry: a TaskInfo per task, with the facts the login node needs and the name
of its Task class, which `get` imports here on first use. Importing this package is cheap (no torch):

    task = tasks.of(cfg.model, cfg.dataset)     # the run's task: its model's, else its data set's
    data = task.load_data(cfg); model = task.build_model(cfg, data)

Adding a task is a folder or module here that fills base.Task, and one TaskInfo line in catalog.TASKS
(with its models and data sets in the catalog naming it).
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING

from ... import catalog

if TYPE_CHECKING:
    from .base import Task


@functools.cache
def get(name: str) -> Task:
    """The registered task `name`, its class imported by the name catalog.TASKS gives."""
    module, _, cls = catalog.TASKS[name].task.partition(":")
    return getattr(importlib.import_module(module), cls)()


def of(model: str | None, dataset: str | None = None) -> Task:
    """The task that trains this model on this data set (catalog.task_of)."""
    return get(catalog.task_of(model, dataset).name)
