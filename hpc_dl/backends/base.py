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


class Backend(abc.ABC):
    name: str
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
    def states(self, runs: list[tuple[RunDir, dict]]) -> list[str]:
        """The state of each (run, submission record), answered together (one scheduler query)."""

    @abc.abstractmethod
    def job_state(self, job_id: str) -> str:
        """The state of a job that is not a run (a sweep's collect job, a local sequence)."""

    @abc.abstractmethod
    def cancel(self, run: RunDir, sub: dict) -> None:
        """Ask the scheduler to stop the run's job."""

    def state(self, run: RunDir, sub: dict) -> str:
        return self.states([(run, sub)])[0]

    def cancel_all(self, runs: list[tuple[RunDir, dict]], jobs: list[str]) -> None:
        """Stop several runs' jobs, and `jobs` that are not runs (a sweep's collect job), together. By
        default one run at a time; a backend whose sweeps collect inside their runs' job has no more to stop."""
        for run, sub in runs:
            self.cancel(run, sub)
