"""The GPUs of this machine, as the local profile sees them, without importing torch (login-node speed).

A CUDA_VISIBLE_DEVICES the user set is the set hpcdl picks from and never overrides; without it, every
GPU the NVIDIA driver lists. Tests fake the count by replacing `visible_gpus`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

DEVICES = ("auto", "gpu", "cpu")  # JobSpec.device


def visible_gpus() -> list[str]:
    """The ids (or UUIDs) of the GPUs jobs on this machine may use, in order."""
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is not None:
        return [x.strip() for x in chosen.split(",") if x.strip() and x.strip() != "-1"]
    driver = Path("/proc/driver/nvidia/gpus")
    if driver.is_dir():
        return [str(i) for i in range(len(list(driver.iterdir())))]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def assign(gpus: int, device: str) -> str | None:
    """CUDA_VISIBLE_DEVICES for a local job of `gpus` workers: the first ones of the visible set, "" for
    CPU workers on a GPU machine, None (leave it alone) where there is no GPU."""
    visible = visible_gpus()
    if device == "cpu":
        return "" if visible else None
    return ",".join(visible[:gpus]) if visible else None


def describe(visible: list[str]) -> str:
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = f" (CUDA_VISIBLE_DEVICES={chosen})" if chosen is not None else ""
    return f"{len(visible)} visible GPU{'s' if len(visible) != 1 else ''}{where}"
