"""The one model of a run's state (TorchX's AppState is the example): every backend and the job wrapper
map what they know into `State`, and control, status, wait, logs --follow, collect and rerun read only it.

A state is one of three kinds:
- going: the job is queued or running, or between two attempts (PENDING, RUNNING, REQUEUED, ...);
- terminal: it ended and will not go on by itself (COMPLETED, FAILED, TERMINATED, ...);
- neither: NOT SUBMITTED (no job was handed to a scheduler) and UNKNOWN (no scheduler can tell).

Names are SLURM's where SLURM has the notion, so a state reads the same in `hpcdl status` and in sacct.
Two are the job wrapper's own (hpc_dl/node/jobscript.py writes them into exit.json):
- TERMINATED: the job script was ended by a signal (exit.json's "signals" says which);
- STOPPED: the workers checkpointed and stopped on request (a time-limit warning) and the job was not
  requeued; `hpcdl rerun` resumes it. SLURM's own STOPPED (a job held by SIGSTOP, keeping its
  allocation) is a different thing: the SLURM backend maps it to SUSPENDED.
"""

from __future__ import annotations

import enum


class State(str, enum.Enum):
    NOT_SUBMITTED = "NOT SUBMITTED"
    UNKNOWN = "UNKNOWN"
    # going
    PENDING = "PENDING"
    CONFIGURING = "CONFIGURING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    SUSPENDED = "SUSPENDED"
    RESIZING = "RESIZING"
    REQUEUED = "REQUEUED"
    REQUEUE_HOLD = "REQUEUE_HOLD"
    REQUEUE_FED = "REQUEUE_FED"
    # terminal
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    LOST = "LOST"  # the local job's controller is gone and it left no exit record
    TERMINATED = "TERMINATED"
    STOPPED = "STOPPED"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def is_terminal(self) -> bool:
        """It ended and will not go on by itself."""
        return self in _TERMINAL

    @property
    def is_going(self) -> bool:
        """Queued, running, or between two attempts of a requeued job."""
        return self in _GOING

    @property
    def is_success(self) -> bool:
        return self is State.COMPLETED

    @property
    def needs_triage(self) -> bool:
        """Whether `hpcdl status` says why: it neither completed nor is still going."""
        return not (self.is_success or self.is_going)

    @property
    def needs_rerun(self) -> bool:
        """Whether `hpcdl rerun` submits it again: it did not complete and is not still going."""
        return self.needs_triage

    @classmethod
    def of(cls, name: str | State | None, mapping: dict[str, State] | None = None) -> State:
        """A name as a State: through a backend's own `mapping` first, then by name; UNKNOWN otherwise."""
        if isinstance(name, State):
            return name
        if name is None:
            return cls.UNKNOWN
        text = str(name).strip().split()[0].rstrip("+") if str(name).strip() else ""
        if mapping and text in mapping:
            return mapping[text]
        return _BY_VALUE.get(text, cls.UNKNOWN)


_GOING = frozenset(
    {
        State.PENDING,
        State.CONFIGURING,
        State.RUNNING,
        State.COMPLETING,
        State.SUSPENDED,
        State.RESIZING,
        State.REQUEUED,
        State.REQUEUE_HOLD,
        State.REQUEUE_FED,
    }
)
_TERMINAL = frozenset(
    {
        State.COMPLETED,
        State.FAILED,
        State.CANCELLED,
        State.TIMEOUT,
        State.OUT_OF_MEMORY,
        State.NODE_FAIL,
        State.PREEMPTED,
        State.BOOT_FAIL,
        State.DEADLINE,
        State.LOST,
        State.TERMINATED,
        State.STOPPED,
    }
)
_BY_VALUE = {s.value: s for s in State}

# what the job wrapper writes into exit.json (hpc_dl/node/jobscript.py): each is a State by name
WRAPPER_STATES = (State.COMPLETED, State.CANCELLED, State.STOPPED, State.TERMINATED, State.FAILED, State.REQUEUED)
