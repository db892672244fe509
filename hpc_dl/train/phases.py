"""Phase timers for the training step (forward, backward with its communication, optimizer) that do not
serialise the step.

On CPU a mark is the host clock, and the phases add up as the step runs. On a GPU the host clock would
time kernel launches, not kernels, so a mark is a CUDA event recorded on the current stream; the step's
events are kept and read once (`settle`), after the epoch's closing synchronize, so the hot loop never
waits on the device.
"""

from __future__ import annotations

import time

import torch

PHASES = ("forward", "backward", "optimizer")


class PhaseClock:
    def __init__(self, device: torch.device, event=None):
        """event: a factory of CUDA-event-like objects (record(), elapsed_time(other) in ms); None: on a
        GPU torch.cuda.Event(enable_timing=True), on CPU the host clock."""
        if event is None and device.type == "cuda":
            event = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
        self.event = event
        self.pending: list[tuple] = []

    def mark(self):
        if self.event is None:
            return time.perf_counter()
        ev = self.event()
        ev.record()
        return ev

    def step(self, phases: dict, marks: tuple) -> None:
        """marks: len(PHASES) + 1 marks around the phases of one step."""
        if self.event is None:
            for name, a, b in zip(PHASES, marks, marks[1:], strict=False):
                phases[name] += b - a
        else:
            self.pending.append(marks)

    def settle(self, phases: dict) -> None:
        """Add the pending GPU steps' times to `phases` (call after the device has synchronised)."""
        for marks in self.pending:
            for name, a, b in zip(PHASES, marks, marks[1:], strict=False):
                phases[name] += a.elapsed_time(b) / 1000.0
        self.pending.clear()
