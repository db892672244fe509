"""The training side's name for the events writer; the format itself is owned by hpc_dl.events.

Its run_start and epoch_stop events also carry `runqueue(s)`: how long this rank's training thread has
waited, ready to run, for a CPU since it started (the kernel's run delay, /proc/thread-self/schedstat;
null where the kernel does not say). On a host whose cores other processes share, that time is not the
training's own: `hpcdl plan` takes each epoch's share of it out of the measured step.

epoch_stop and run_stop (also a failure's) carry the rank's peak memory (memory.py): `peak_memory(MiB)`,
on a GPU also `peak_reserved(MiB)`, and `peak_memory_source` (what was measured). Where the rank samples
its node's GPUs (gpu_sampler.py), each epoch_stop is preceded by a `gpu_sample` event of that epoch.
"""

from __future__ import annotations

from pathlib import Path

from .. import events as _events
from ..runs import RunDir
from . import memory

__all__ = ["Events", "rank_dir", "run_delay"]


class Events(_events.Events):
    STAMPED = ("run_start", "epoch_stop")
    MEASURED = ("epoch_stop", "run_stop")  # with the rank's peak memory

    def __init__(self, run: RunDir, rank: int, device=None, sampler=None):
        super().__init__(run, rank)
        self.device, self.sampler = device, sampler  # the rank's torch device; its GpuSampler, if any

    def emit(self, event: str, **fields) -> dict:
        if fields.get("recovered"):  # an epoch logged again from the checkpoint: measured back then
            return super().emit(event, **fields)
        if event in self.STAMPED:
            fields.setdefault("runqueue(s)", run_delay())
        if event in self.MEASURED:
            fields = {**memory.peak(self.device), **fields}
        if event == "epoch_stop" and self.sampler is not None:
            super().emit("gpu_sample", epoch=fields.get("epoch"), **self.sampler.drain())
        return super().emit(event, **fields)

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        super().close()


def run_delay() -> float | None:
    """Seconds this thread has spent runnable but waiting for a CPU (None where the kernel does not say)."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def rank_dir(run_dir: Path) -> RunDir:
    return RunDir(Path(run_dir).resolve())
