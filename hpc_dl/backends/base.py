"""The interface every backend fills: submit a run or a sweep, read states, cancel.

The login-node flow (hpc_dl/submit.py) is written once over this interface; a new scheduler is a new
backend, not a branch in the flow. Backends are imported lazily by name (`hpc_dl.backends.get`).
"""

from __future__ import annotations

import abc
from pathlib import Path

from ..render import Rendered
from ..runs import RunDir
from ..spec import JobSpec
from ..states import State


class Backend(abc.ABC):
    name: str
    # every state name this backend can report (its scheduler's, its records'), mapped into the one model
    STATES: dict[str, State] = {}
    cheap_queries = False  # True: asking for a state costs no scheduler call (waits need not back off)

    @abc.abstractmethod
    def submit(self, run: RunDir, spec: JobSpec, rendered: Rendered) -> str:
        """Hand the run's job to the scheduler; return its job id."""

    @abc.abstractmethod
    def submit_sweep(
        self,
        runs: list[RunDir],
        big: JobSpec,
        sbatch: dict[str, str],
        throttle: int,
        study_dir: Path,
        out: Path | None,
        parallel: int = 1,
    ) -> tuple[list[str], str | None]:
        """Every run as one job array of the `big` allocation (and a collect job into `out` unless it is
        None); return each run's job id and the collect job's id."""

    @abc.abstractmethod
    def states(self, runs: list[tuple[RunDir, dict]]) -> list[State]:
        """The state of each (run, submission record), answered together (one scheduler query)."""

    @abc.abstractmethod
    def job_state(self, job_id: str) -> State:
        """The state of a job that is not a run (a sweep's collect job, a local sequence)."""

    @abc.abstractmethod
    def cancel(self, run: RunDir, sub: dict) -> None:
        """Ask the scheduler to stop the run's job."""

    def state(self, run: RunDir, sub: dict) -> State:
        return self.states([(run, sub)])[0]
