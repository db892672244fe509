"""How hpcdl hands work to sbatch, without a cluster: which failures are tried again, and how a sweep is cut
into arrays. (tests/test_slurm.py checks the same on the real test SLURM.)"""

import subprocess

import pytest
from submitit.core.utils import FailedJobError

from hpc_dl import sweep
from hpc_dl.backends import slurm
from hpc_dl.errors import SubmitError

TIMEOUT = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"
REFUSED = "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"


def sbatch_failed(stderr: str) -> FailedJobError:
    """What submitit raises when sbatch exits non-zero (submitit.core.utils.CommandFunction)."""
    try:
        raise FailedJobError(stderr) from subprocess.CalledProcessError(1, ["sbatch"], output="", stderr=stderr)
    except FailedJobError as exc:
        return exc


def test_array_chunks_keep_every_index_below_max_array_size():
    assert sweep.array_chunks(list(range(7)), 5) == [[0, 1, 2, 3, 4], [5, 6]]
    assert sweep.array_chunks(list(range(5)), 5) == [[0, 1, 2, 3, 4]]
    assert sweep.array_chunks(list(range(4)), 5) == [[0, 1, 2, 3]]
    assert sweep.array_chunks(list(range(3)), 1) == [[0], [1], [2]]


def test_depend_adds_to_the_users_own_dependency():
    assert slurm.depend({"partition": "gpu"}, "afterany:7") == {"partition": "gpu", "dependency": "afterany:7"}
    assert slurm.depend({"dependency": "afterok:3"}, "afterany:7") == {"dependency": "afterok:3,afterany:7"}


@pytest.mark.parametrize(
    ("stderr", "transient"),
    [
        (TIMEOUT, True),
        ("sbatch: error: Batch job submission failed: Resource temporarily unavailable", True),
        ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)", True),
        (REFUSED, False),
        ("sbatch: error: Batch job submission failed: Requested node configuration is not available", False),
        ("sbatch: error: Batch job submission failed: Invalid job array specification", False),
    ],
)
def test_only_a_busy_controllers_errors_are_transient(stderr, transient):
    assert slurm.is_transient(sbatch_failed(stderr)) is transient


def test_a_socket_timeout_is_no_sbatch_error_when_it_is_not_sbatchs():
    assert not slurm.is_transient(RuntimeError("socket timed out"))


def flaky(*failures: str):
    """A submission whose sbatch fails with these messages, in turn, then succeeds."""
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= len(failures):
            raise sbatch_failed(failures[len(calls) - 1])
        return "job 42"

    return call, calls


def test_sbatch_is_tried_again_after_a_transient_error(monkeypatch, capsys):
    monkeypatch.setenv("HPCDL_SBATCH_RETRY_S", "0")
    call, calls = flaky(TIMEOUT, TIMEOUT)
    assert slurm.sbatch_retried(call) == "job 42"
    assert len(calls) == 3
    assert capsys.readouterr().err.splitlines() == [
        f"[hpcdl] sbatch failed ({TIMEOUT}); trying again in 0.0 s (attempt 2 of 5)",
        f"[hpcdl] sbatch failed ({TIMEOUT}); trying again in 0.0 s (attempt 3 of 5)",
    ]


def test_a_refusal_is_not_tried_again(monkeypatch, capsys):
    monkeypatch.setenv("HPCDL_SBATCH_RETRY_S", "0")
    call, calls = flaky(REFUSED)
    with pytest.raises(SubmitError) as info:
        slurm.sbatch_retried(call)
    assert str(info.value) == f"sbatch refused the job: {REFUSED}"
    assert (len(calls), capsys.readouterr().err) == (1, "")


def test_a_controller_busy_for_every_try_fails_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("HPCDL_SBATCH_RETRY_S", "0")
    call, calls = flaky(*[TIMEOUT] * 5)
    with pytest.raises(SubmitError) as info:
        slurm.sbatch_retried(call)
    assert str(info.value) == f"sbatch failed 5 times ({TIMEOUT}): the controller is busy, try again later"
    assert len(calls) == 5 and len(capsys.readouterr().err.splitlines()) == 4


def test_the_backoff_doubles_with_jitter(monkeypatch):
    monkeypatch.setenv("HPCDL_SBATCH_RETRY_S", "0.001")
    pauses = []
    monkeypatch.setattr("time.sleep", pauses.append)
    call, _calls = flaky(*[TIMEOUT] * 4)
    assert slurm.sbatch_retried(call) == "job 42"
    assert len(pauses) == 4
    for i, pause in enumerate(pauses):  # 1, 2, 4, 8 ms, each with up to 1 ms more
        assert 0.001 * 2**i <= pause <= 0.001 * (2**i + 1)
