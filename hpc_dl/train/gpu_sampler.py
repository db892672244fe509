"""The GPUs' utilisation, memory and power, sampled about once a second off the training thread.

A daemon thread asks NVML (nvidia-ml-py's `pynvml`) for every GPU this process sees (its
CUDA_VISIBLE_DEVICES, in that order); each epoch_stop is preceded by a `gpu_sample` event that sums up
the samples since the one before: per GPU the mean utilisation (%), the most memory used (MiB) and the
mean power (W). Only the lowest local rank of a node samples (the node's other ranks see the same GPUs),
and only where CUDA devices exist: CPU workers start none. `summarize` is a pure function of the
samples, so it is tested without a GPU.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

INTERVAL_S = 1.0

# one sample: {GPU index (as this process counts them): (utilisation %, memory used MiB, power W)}
Sample = dict[int, tuple[float, float, float]]


def summarize(samples: list[Sample]) -> dict:
    """The gpu_sample event's fields for these samples: per GPU mean util, max memory, mean power."""
    gpus: dict[int, list[tuple[float, float, float]]] = {}
    for sample in samples:
        for index, values in sample.items():
            gpus.setdefault(index, []).append(values)
    rows = []
    for index in sorted(gpus):
        values = gpus[index]
        rows.append(
            {
                "gpu": index,
                "samples": len(values),
                "util_mean(%)": round(sum(v[0] for v in values) / len(values), 1),
                "memory_max(MiB)": round(max(v[1] for v in values), 1),
                "power_mean(W)": round(sum(v[2] for v in values) / len(values), 1),
            }
        )
    util = [r["util_mean(%)"] for r in rows]
    return {
        "gpus": rows,
        "samples": len(samples),
        "util_mean(%)": round(sum(util) / len(util), 1) if util else None,
    }


class GpuSampler:
    """Calls `source` every `interval` seconds on a daemon thread; `drain` returns the summary so far."""

    def __init__(self, source: Callable[[], Sample], interval: float = INTERVAL_S):
        self.source, self.interval = source, interval
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hpcdl-gpu-sampler", daemon=True)

    def start(self) -> GpuSampler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sample = self.source()
            except Exception:  # a GPU that stops answering ends the sampling, never the training
                return
            with self._lock:
                self._samples.append(sample)
            self._stop.wait(self.interval)

    def drain(self) -> dict:
        """The summary of the samples since the last drain (then forgotten)."""
        with self._lock:
            samples, self._samples = self._samples, []
        return summarize(samples)

    def stop(self) -> None:
        self._stop.set()


def nvml_source() -> Callable[[], Sample] | None:
    """A sample source over the GPUs this process sees, or None where NVML cannot be used."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handles = [_handle(pynvml, ident) for ident in _visible(pynvml.nvmlDeviceGetCount())]
    except Exception:  # no driver, no library, a device NVML does not know
        return None

    def sample() -> Sample:
        out: Sample = {}
        for index, h in enumerate(handles):
            util = pynvml.nvmlDeviceGetUtilizationRates(h).gpu
            used = pynvml.nvmlDeviceGetMemoryInfo(h).used / 2**20
            power = pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0  # mW
            out[index] = (float(util), float(used), float(power))
        return out

    return sample


def _visible(count: int) -> list[str]:
    """The NVML identities (index or UUID) of the GPUs CUDA numbers 0, 1, ... in this process."""
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is None:
        return [str(i) for i in range(count)]
    return [x.strip() for x in chosen.split(",") if x.strip() and x.strip() != "-1"]


def _handle(pynvml, ident: str):
    if ident.isdigit():
        return pynvml.nvmlDeviceGetHandleByIndex(int(ident))
    return pynvml.nvmlDeviceGetHandleByUUID(ident)


def start_for(device, local_rank: int) -> GpuSampler | None:
    """The sampler of this rank: started on a CUDA device by the node's lowest local rank, else None."""
    if getattr(device, "type", "cpu") != "cuda" or local_rank != 0:
        return None
    source = nvml_source()
    return GpuSampler(source).start() if source is not None else None
