"""The training side's name for the events writer; the format itself is owned by hpc_dl.events."""

from __future__ import annotations

from pathlib import Path

from ..events import Events
from ..runs import RunDir

__all__ = ["Events", "rank_dir"]


def rank_dir(run_dir: Path) -> RunDir:
    return RunDir(Path(run_dir).resolve())
