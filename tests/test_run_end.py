"""A finished run is final, whatever the exit: every rank's own end record (run_stop in
events/rank-R.jsonl, rank 0's result.json) judges it. A rank that dies after recording success (gloo's
threads racing the interpreter's exit: SIGABRT) leaves the run COMPLETED with a note in exit.json; a rank
that did not finish fails it, as before.

The judging is tested on hand-made job scripts (bash writes what the ranks and the launcher would), then
on real torchrun launches of a user script, on this machine and on the test SLURM."""

import json
import secrets
import signal
import textwrap

import pytest

from hpc_dl import control
from hpc_dl.node import jobscript
from hpc_dl.runs import RunDir, read_json
from tests.conftest import run_folders
from tests.test_real_runs import submitted_run

TORCHRUN_ABORT = """\
Root Cause (first observed failure):
[0]:
  time      : 2026-12-03_14:13:00
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -6 (pid: 13505)  (SIGABRT)
  error_file: <N/A>
  traceback : Signal 6 (SIGABRT) received by PID 13505
"""
MPIRUN_ABORT = "mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 6 (Aborted).\n"


def _start(rank: int, world: int = 2) -> dict:
    return {"event": "run_start", "time": 1, "rank": rank, "world_size": world}


def _stop(rank: int, status: str = "success") -> dict:
    return {"event": "run_stop", "time": 2, "rank": rank, "status": status}


@pytest.fixture
def job(tmp_path, monkeypatch):
    """run_script over a hand-written job.sh: the ranks' events and rank 0's result as given, the
    launcher's words in job.log, then `exit rc`. Returns exit.json (or the failure it raised)."""
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(name, raising=False)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, jobscript.WARNING_SIGNAL)}
    yield lambda *a, **k: _run(tmp_path, *a, **k)
    for s, handler in saved.items():
        signal.signal(s, handler)


def _run(tmp_path, ranks: dict[int, list[dict]], rc: int, said: str = "", result: bool = True, script=None):
    run = RunDir.create(tmp_path / "runs", "s", secrets.token_hex(4))
    run.spec.write_text(json.dumps({"strategy": "ddp", "script": script}))
    for rank, evs in ranks.items():
        run.rank_events(rank).write_text("".join(json.dumps(e) + "\n" for e in evs))
    if result:
        run.result.write_text(json.dumps({"status": "success"}))
    run.script.write_text(f"cat <<'EOF'\n{said}EOF\nexit {rc}\n")
    try:
        jobscript.run_script(str(run.path))
    except jobscript.JobScriptFailed as exc:
        return read_json(run.exit) | {"raised": str(exc).split(";")[0]}
    return read_json(run.exit)


BOTH_DONE = {0: [_start(0), _stop(0)], 1: [_start(1), _stop(1)]}


@pytest.mark.parametrize(
    "said, rc, note",
    [
        (TORCHRUN_ABORT, 1, "rank 1 ended by SIGABRT after recording success"),
        (MPIRUN_ABORT, 134, "rank 1 ended by SIGABRT after recording success"),
        ("", 3, "the launcher exited with status 3 after every rank recorded success"),
    ],
    ids=["torchrun", "mpirun", "no-word"],
)
def test_every_rank_recorded_success_is_completed_with_a_note(job, said, rc, note):
    ended = job(BOTH_DONE, rc, said)
    assert (ended["state"], ended["returncode"], ended["note"]) == ("COMPLETED", rc, note)


@pytest.mark.parametrize(
    "ranks, result",
    [
        ({0: [_start(0), _stop(0)], 1: [_start(1)]}, True),  # rank 1 started, never ended
        ({0: [_start(0), _stop(0)]}, True),  # rank 1 never started: its peer's world says 2
        ({0: [_start(0), _stop(0)], 1: [_start(1), _stop(1, "failed")]}, True),
        ({0: [_start(0), _stop(0)], 1: [_start(1), _stop(1), _start(1)]}, True),  # a later attempt did not end
        (BOTH_DONE, False),  # rank 0 wrote no result.json
    ],
    ids=["no-run-stop", "no-rank-file", "rank-failed", "later-attempt", "no-result"],
)
def test_a_rank_that_did_not_finish_fails_the_run(job, ranks, result):
    ended = job(ranks, 1, TORCHRUN_ABORT, result=result)
    assert (ended["state"], ended.get("note"), ended["raised"]) == (
        "FAILED",
        None,
        "job script ended FAILED (status 1)",
    )


def test_a_clean_exit_has_no_note(job):
    ended = job(BOTH_DONE, 0)
    assert (ended["state"], ended.get("note")) == ("COMPLETED", None)


# ---------------------------------------------------------------------------------------------- real runs

# no destroy_process_group, as most real scripts: hpc_dl.report leaves the group at exit, and whatever
# still aborts after recording success is judged by the end records
NO_DESTROY = """
import torch.distributed as dist
from hpc_dl import report

dist.init_process_group("gloo")
report.start(model="tiny", dataset="none", batch_size=1)
report.epoch(samples=1, seconds=0.01)
"""
ABORT_AFTER_DONE = (
    NO_DESTROY
    + """
import os
report.done()
if dist.get_rank() == 1:
    os.abort()  # what gloo's threads did at interpreter exit, made certain
"""
)
EXIT_BEFORE_DONE = (
    NO_DESTROY
    + """
import os
if dist.get_rank() == 1:
    os._exit(1)  # rank 1 ends before its end record
report.done()
"""
)
SYS_EXIT = (
    NO_DESTROY
    + """
import sys
sys.exit(1 if dist.get_rank() == 1 else 0)  # not a success, though report would end it at exit
"""
)


def _scripts(tmp_path) -> None:
    for name, text in [
        ("no_destroy.py", NO_DESTROY),
        ("abort.py", ABORT_AFTER_DONE),
        ("exit.py", EXIT_BEFORE_DONE),
        ("sys_exit.py", SYS_EXIT),
    ]:
        (tmp_path / name).write_text(textwrap.dedent(text))


def _ends(hpcdl, profile: str, runs_root, tmp_path, sweeps: int) -> None:
    """20 launches of the script without destroy_process_group (in `sweeps` sweeps: the test SLURM's
    MaxArraySize may be small) and one each of the others; all submitted first, then waited for."""
    _scripts(tmp_path)
    common = ["--profile", profile, "--strategy", "ddp", "--gpus", "2", "--time", "5"]
    for _ in range(sweeps):
        points = ["--repeats", str(20 // sweeps), "--throttle", "1" if sweeps > 1 else "4", "--no-collect"]
        sweep = hpcdl("sweep", *common, *points, "--script", "no_destroy.py", "--study", "twenty")
        assert sweep.exit_code == 0, sweep.output
    singles = {}
    for name in ("abort.py", "exit.py", "sys_exit.py"):
        result = hpcdl("submit", *common, "--script", name, "--study", "one")
        assert result.exit_code == 0, result.output
        singles[name] = submitted_run(result, runs_root)
    twenty = run_folders(runs_root / "twenty")
    assert len(twenty) == 20
    states = [control.wait(RunDir(p), timeout_s=900) for p in twenty]
    assert states == ["COMPLETED"] * 20, [read_json(RunDir(p).exit) for p in twenty]
    for run in singles.values():
        control.wait(run, timeout_s=300)
    ended = {name: read_json(run.exit) for name, run in singles.items()}
    assert (ended["abort.py"]["state"], ended["abort.py"]["note"]) == (
        "COMPLETED",
        "rank 1 ended by SIGABRT after recording success",
    )
    assert ended["exit.py"]["state"] == "FAILED" and "note" not in ended["exit.py"]
    assert ended["sys_exit.py"]["state"] == "FAILED" and "note" not in ended["sys_exit.py"]
    (row,) = [r for r in json.loads(hpcdl("status", "--json").stdout) if r["run"] == singles["abort.py"].run_id]
    assert (row["state"], row["note"]) == ("COMPLETED", "rank 1 ended by SIGABRT after recording success")
    stops = [json.loads(x) for x in singles["sys_exit.py"].rank_events(1).read_text().splitlines()][-1]
    assert (stops["event"], stops["status"], stops["error"]) == ("run_stop", "failed", "sys.exit(1)")


@pytest.mark.slow
def test_twenty_scripts_without_destroy_complete_locally(hpcdl, runs_root, tmp_path):
    _ends(hpcdl, "local", runs_root, tmp_path, sweeps=1)


@pytest.mark.slow
@pytest.mark.slurm
def test_twenty_scripts_without_destroy_complete_on_slurm(on_cluster, hpcdl, runs_root, tmp_path):
    _ends(hpcdl, "testcluster", runs_root, tmp_path, sweeps=4)
