"""The interface every backend fills: what it can run, submit a job or an array, read states, cancel.

The login-node flow (hpc_dl/submit.py) is written once over this interface, as submitit's executors
fill a few hooks of one flow: a run is `submit`; a sweep is `submit_array` per chunk of at most
`max_array_size()` runs (each after the one before), then `submit_collect` after all of them unless the
backend `collects_in_array` (its array's own job collects after the points). A new scheduler is a new
backend, not a branch in the flow. Backends are imported lazily by name (`hpc_dl.backends.get`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runs import RunDir, read_json
from ..spec import JobSpec
from ..states import State

if TYPE_CHECKING:
    from ..profiles import Partition
    from ..render import Rendered


@dataclass(frozen=True)
class ArrayHow:
    """How one array of a sweep runs: its submitit folder, its throttle, the array it waits for, the local
    sequence's parallelism, and (a backend that collects in the array's job) where collect writes."""

    folder: Path
    throttle: int
    after: str | None = None
    parallel: int = 1
    study_dir: Path | None = None
    collect_into: Path | None = None


class Backend(abc.ABC):
    name: str
    # every state name this backend can report (its scheduler's, its records'), mapped into the one model
    STATES: dict[str, State] = {}
    cheap_queries = False  # True: asking for a state costs no scheduler call (waits need not back off)
    # True: jobs run on the submitting machine (one node, the GPUs it lets hpcdl use, its PATH and files)
    on_this_machine = False
    # True: a shape that does not fit the chosen partition gets advice on the partitions it fits
    advises_partitions = False
    # True: a sweep's array is one job that collects after its points (no separate collect job)
    collects_in_array = False
    # the options that ask for whole nodes, shared with no other job (--exclusive); empty: it cannot
    WHOLE_NODES: dict[str, str] = {}
    # options written without a value (`#SBATCH --exclusive`): their value in the options is ""
    FLAGS: frozenset[str] = frozenset()

    @property
    def reserves_nodes(self) -> bool:
        return bool(self.WHOLE_NODES)

    # -- facts the login node asks before anything is submitted (pure, cheap: no scheduler call)
    def check(self, spec: JobSpec, part: Partition, profile: str) -> None:
        """Raise SpecError where the spec cannot run on this scheduler (beyond the partition's limits)."""
        return None

    def has_gpus(self, part: Partition, device: str) -> bool:
        """Whether the job's workers are GPUs (device is the spec's: auto, cpu or gpu)."""
        return device != "cpu" and part.gpus_per_node > 0

    def scheduler_options(self, spec: JobSpec, part: Partition, warning_s: int) -> dict[str, str]:
        """The job's options that only this scheduler has (SLURM: partition, gres, the warning signal)."""
        return {}

    def parameters(self, spec: JobSpec) -> dict[str, Any]:
        """What the executor is given besides the script's own options (the local executor's)."""
        return {}

    def request(self, sbatch: dict[str, str], parameters: dict[str, Any]) -> dict[str, Any]:
        """What this backend hands its scheduler, as the dry run prints it."""
        return dict(sbatch)

    @abc.abstractmethod
    def submit(self, run: RunDir, spec: JobSpec, rendered: Rendered) -> str:
        """Hand the run's job to the scheduler; return its job id."""

    def max_array_size(self) -> int | None:
        """The most runs one array may hold (None: no limit)."""
        return None

    @abc.abstractmethod
    def submit_array(self, runs: list[RunDir], big: JobSpec, sbatch: dict[str, str], how: ArrayHow) -> list[str]:
        """The runs as one array of the `big` allocation; return each run's job id."""

    def submit_collect(self, after: list[str], sbatch: dict[str, str], folder: Path, study_dir: Path, out: Path) -> str:
        """A collect job of the study into `out`, after the arrays `after`; return its job id."""
        raise NotImplementedError(f"backend {self.name!r} collects in the array's own job")

    def array_of(self, job_id: str) -> str:
        """The id of the array a run's job id belongs to."""
        return job_id

    @abc.abstractmethod
    def states(self, runs: list[tuple[RunDir, dict]]) -> list[State]:
        """The state of each (run, submission record), answered together (one scheduler query)."""

    def usage(self, runs: list[tuple[RunDir, dict]]) -> list[dict | None]:
        """What each run's job used as the scheduler accounts it (SLURM: sacct's Elapsed, AllocCPUS,
        TotalCPU, MaxRSS), from the query `states` makes; None where the scheduler keeps no account."""
        return [None] * len(runs)

    @abc.abstractmethod
    def job_state(self, job_id: str) -> State:
        """The state of a job that is not a run (a sweep's collect job, a local sequence)."""

    @abc.abstractmethod
    def cancel(self, run: RunDir, sub: dict) -> None:
        """Ask the scheduler to stop the run's job."""

    def state(self, run: RunDir, sub: dict) -> State:
        return self.states([(run, sub)])[0]

    def ended(self, run: RunDir) -> State | None:
        """How the run ended, as its own exit record says it, where that is final without asking the
        scheduler (waits and `logs --follow` read it every second); None: ask the scheduler."""
        record = read_json(run.exit)
        state = State.of(record.get("state")) if isinstance(record, dict) and record.get("state") else None
        return state if state is not None and state.is_terminal else None

    def cancel_all(self, runs: list[tuple[RunDir, dict]], jobs: list[str]) -> None:
        """Stop several runs' jobs, and `jobs` that are not runs (a sweep's collect job), together. By
        default one run at a time; a backend whose sweeps collect inside their runs' job has no more to stop."""
        for run, sub in runs:
            self.cancel(run, sub)
