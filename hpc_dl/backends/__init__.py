"""Backends by name: `local` (this machine, submitit's LocalExecutor) and `slurm` (sbatch via submitit)."""

from __future__ import annotations

import importlib

from .base import Backend

_MODULES = {"local": "LocalBackend", "slurm": "SlurmBackend"}
NAMES = tuple(_MODULES)  # what a profile's `scheduler:` may name


def get(name: str) -> Backend:
    """The backend called `name`, imported on first use."""
    module = importlib.import_module(f"{__name__}.{name}")
    return getattr(module, _MODULES[name])()


__all__ = ["NAMES", "Backend", "get"]
