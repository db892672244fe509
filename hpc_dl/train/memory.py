"""A rank's peak memory, as epoch_stop and run_stop record it (train/events.py stamps them).

On a GPU: torch.cuda.max_memory_allocated and max_memory_reserved of the rank's device, the peak since
the process started (what tensors held, and what PyTorch's caching allocator kept from the driver). On
CPU workers: the process's peak resident set size (getrusage's ru_maxrss, KiB on Linux), which includes
the interpreter, torch's own libraries (300+ MiB) and the data set as well as the model's tensors.
Both are high-water marks: an epoch's value is the peak so far, never less than the epoch before's.
"""

from __future__ import annotations

import resource
import sys

import torch

MIB = 2**20
# what peak_memory(MiB) measures, by device kind (recorded beside it: the two are not comparable)
SOURCES = {"cuda": "cuda_max_allocated", "cpu": "peak_rss"}


def peak_rss_mib() -> float:
    """This process's peak resident set size, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def peak(device: torch.device | None) -> dict:
    """The event fields of this rank's peak memory on `device` (None: a CPU worker); none where the device
    cannot say (a failure's run_stop after a CUDA error must still be written, with the error)."""
    try:
        if device is not None and device.type == "cuda":
            return {
                "peak_memory(MiB)": round(torch.cuda.max_memory_allocated(device) / MIB, 1),
                "peak_reserved(MiB)": round(torch.cuda.max_memory_reserved(device) / MIB, 1),
                "peak_memory_source": SOURCES["cuda"],
            }
        return {"peak_memory(MiB)": round(peak_rss_mib(), 1), "peak_memory_source": SOURCES["cpu"]}
    except Exception:  # a measurement never replaces the run's own record
        return {}
