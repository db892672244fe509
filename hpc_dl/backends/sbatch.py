"""Handing work to sbatch: tried again, with backoff and jitter, when a busy controller fails it for a
transient reason (TRANSIENT); a real refusal fails at once, in one line. And the cluster's MaxArraySize,
which the shared sweep flow (hpc_dl/submit.py) cuts sweeps to."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import SubmitError
from .slurm_query import query_timeout, run_command

# what sbatch says when the controller is busy or briefly away: worth another try (lower case)
TRANSIENT = (
    "socket timed out",
    "resource temporarily unavailable",
    "unable to contact slurm controller",
    "temporarily unable to accept job",
    "zero bytes were transmitted or received",
    "connection refused",
)
SBATCH_TRIES = 5
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's own default, when `scontrol show config` does not answer
T = TypeVar("T")


def sbatch_retry_s() -> float:
    """The first pause before sbatch is tried again (HPCDL_SBATCH_RETRY_S, default 2 s); it doubles, with
    as much jitter, each time."""
    return float(os.environ.get("HPCDL_SBATCH_RETRY_S", "2"))


def _sbatch_text(exc: BaseException) -> str:
    """What sbatch said on stderr (submitit raises FailedJobError(stderr) from the CalledProcessError)."""
    for e in (exc, exc.__cause__):
        if isinstance(e, subprocess.CalledProcessError) and (e.stderr or e.output):
            out = e.stderr or e.output
            return (out.decode(errors="replace") if isinstance(out, bytes) else str(out)).strip()
    return str(exc).strip()


def _sbatch_error(exc: BaseException) -> bool:
    from submitit.core.utils import FailedJobError

    return isinstance(exc, FailedJobError | subprocess.CalledProcessError)


def is_transient(exc: BaseException) -> bool:
    """Whether sbatch failed for a reason that passes (a busy controller), not a refusal of the job."""
    return _sbatch_error(exc) and any(t in _sbatch_text(exc).lower() for t in TRANSIENT)


def _last_line(exc: BaseException) -> str:
    lines = _sbatch_text(exc).splitlines()
    return lines[-1].strip() if lines else type(exc).__name__


def _quiet(call: Callable[[], T]) -> T:
    with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's stderr; we say it in one line
        return call()


def sbatch_retried(call: Callable[[], T]) -> T:
    """`call` (a submitit submission, which runs sbatch), tried again with backoff and jitter while sbatch
    fails for a transient reason, at most SBATCH_TRIES times; any other failure is a SubmitError at once."""
    import tenacity

    base = sbatch_retry_s()

    def say(state: tenacity.RetryCallState) -> None:
        print(
            f"[hpcdl] sbatch failed ({_last_line(state.outcome.exception())}); trying again in "
            f"{state.next_action.sleep:.1f} s (attempt {state.attempt_number + 1} of {SBATCH_TRIES})",
            file=sys.stderr,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(SBATCH_TRIES),
        wait=tenacity.wait_exponential(multiplier=base, max=30 * base) + tenacity.wait_random(0, base),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=say,
        reraise=True,
    )
    try:
        return retrying(_quiet, call)
    except Exception as exc:
        if not _sbatch_error(exc):
            raise
        if is_transient(exc):
            raise SubmitError(
                f"sbatch failed {SBATCH_TRIES} times ({_last_line(exc)}): the controller is busy, try again later"
            ) from None
        raise SubmitError(f"sbatch refused the job: {_last_line(exc)}") from None


def max_array_size() -> int:
    """The cluster's MaxArraySize (array indices go from 0 to MaxArraySize - 1), asked once per submission."""
    out = run_command(["scontrol", "show", "config"], time.monotonic() + query_timeout())
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out or "", re.MULTILINE)
    return int(m[1]) if m else DEFAULT_MAX_ARRAY_SIZE


def depend(sbatch: dict[str, str], dependency: str) -> dict[str, str]:
    """The options with one more dependency (SLURM: ',' means all of them)."""
    mine = sbatch.get("dependency")
    return {**sbatch, "dependency": f"{mine},{dependency}" if mine else dependency}
