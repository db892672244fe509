"""The entrypoints' common command line as a TrainConfig, both derived from JobSpec's entry fields.

The login node writes the command line with `hpc_dl.render.entry_args`; this module reads it back. Both
sides take the field list, types, defaults and choices from `hpc_dl.spec.entry_fields`, the one
declaration of the training fields.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..spec import entry_fields, field_types

TrainConfig = dataclasses.make_dataclass(
    "TrainConfig",
    [
        ("run_dir", Path),
        *[(f.name, f.type, dataclasses.field(default=f.default)) for f in entry_fields()],
        # strategies that start their own workers (dp devices, hogwild processes)
        ("workers", int | None, dataclasses.field(default=None)),
    ],
    frozen=True,
)
TrainConfig.__module__ = __name__  # so that it pickles (hogwild's spawned workers get it)
TrainConfig.__doc__ = "One worker's training configuration: the run folder and the spec's entry fields."


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parser(strategy: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m hpc_dl.jobs.{strategy}", description=f"hpcdl {strategy} worker")
    p.add_argument("--run-dir", type=Path, required=True)
    types = field_types()
    for f in entry_fields():
        if types[f.name] is bool:  # a switch: its flag alone (render.entry_args writes it only when on)
            p.add_argument(flag(f.name), action="store_true", help=f.metadata["help"] or None)
            continue
        choices = f.metadata["option"].get("choices")
        p.add_argument(
            flag(f.name),
            type=types[f.name],
            default=f.default,
            choices=sorted(choices) if choices is not None else None,
            help=f.metadata["help"] or None,
        )
    p.add_argument("--workers", type=int, default=None)
    return p


def config_from(ns: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(TrainConfig)})
