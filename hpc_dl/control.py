"""Runs after submission, seen from the login node: states, cancel, waiting, status rows, following a log.

One state model (hpc_dl/states.py: State, with is_terminal) and one wait loop, used by `status`,
`logs --follow`, `cancel` and every `--wait`. States come from the run's backend, asked once for all runs
of a call, already mapped into State.
Waiting backs off (1 s growing to a minute, like submitit's watcher) and reads the run folder's own
exit record before asking the scheduler.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from . import backends
from .errors import UsageError
from .runs import RunDir, read_json, write_json
from .states import State


def needs_rerun(state: str | State) -> bool:
    """Whether `hpcdl rerun` submits a run again: it did not complete and is not still going."""
    return State.of(state).needs_rerun


UNKNOWN_GIVE_UP_S = 60  # `logs --follow` stops when no scheduler can tell the state for this long


def is_terminal(state: str | State) -> bool:
    return State.of(state).is_terminal


def submission(run: RunDir) -> dict:
    sub = read_json(run.submission)
    if not sub:
        raise UsageError(f"run {run.run_id} has no submission record ({run.submission})")
    return sub


def states(runs: list[RunDir], records: list[dict | None] | None = None) -> list[State]:
    """Every run's state, with one query per backend for all of them; NOT SUBMITTED where none was.
    `records`: the runs' submission records, when the caller has read them already."""
    by_backend: dict[str, list[tuple[int, RunDir, dict]]] = {}
    out = [State.NOT_SUBMITTED] * len(runs)
    records = records if records is not None else [read_json(r.submission) for r in runs]
    for i, (run, sub) in enumerate(zip(runs, records, strict=True)):
        if sub:
            by_backend.setdefault(sub["executor"], []).append((i, run, sub))
    for name, items in by_backend.items():
        answers = backends.get(name).states([(run, sub) for _i, run, sub in items])
        for (i, _run, _sub), state in zip(items, answers, strict=True):
            out[i] = state
    return out


USAGE = ("max_rss_mib", "total_cpu_s", "cpu_efficiency")  # what status --json and collect show of `usage`


def usage(runs: list[RunDir], records: list[dict | None]) -> list[dict | None]:
    """What every run's job used, as its scheduler accounts it: one call per backend for all of them (on
    SLURM the answer of the bulk sacct that `states` made just before)."""
    out: list[dict | None] = [None] * len(runs)
    by_backend: dict[str, list[int]] = {}
    for i, sub in enumerate(records):
        if sub:
            by_backend.setdefault(sub["executor"], []).append(i)
    for name, items in by_backend.items():
        for i, answer in zip(items, backends.get(name).usage([(runs[i], records[i]) for i in items]), strict=True):
            out[i] = answer
    return out


def state(run: RunDir) -> State:
    sub = submission(run)
    return backends.get(sub["executor"]).state(run, sub)


def cancel(run: RunDir) -> State:
    """Cancel a run; return its state before cancelling."""
    sub = submission(run)
    backend = backends.get(sub["executor"])
    before = backend.state(run, sub)
    if before.is_terminal:
        return before
    write_json(run.cancel, {"time": time.time(), "by": os.environ.get("USER", "")})
    backend.cancel(run, sub)
    return before


def cancel_study(study) -> tuple[list[tuple[RunDir, str]], list[str]]:
    """Cancel every run of a study that has not ended, and its sweeps' collect jobs, with one state query
    and one cancel per backend. Return the (run, state before) of each run cancelled, and the collect jobs."""
    from .runs import find_runs

    found = find_runs([study.path])
    records = [read_json(r.submission) for r in found]
    todo: dict[str, list[tuple[RunDir, dict]]] = {}
    cancelled = []
    for run, sub, before in zip(found, records, states(found, records), strict=True):
        if sub and not before.is_terminal:
            write_json(run.cancel, {"time": time.time(), "by": os.environ.get("USER", "")})
            todo.setdefault(sub["executor"], []).append((run, sub))
            cancelled.append((run, before))
    jobs: dict[str, list[str]] = {}
    for record in filter(None, (read_json(p) for p in study.sweep_records())):
        job = record.get("collect_job_id")
        if job and not backends.get(record["executor"]).job_state(job).is_terminal:
            jobs.setdefault(record["executor"], []).append(job)
    for name in sorted(set(todo) | set(jobs)):
        backends.get(name).cancel_all(todo.get(name, []), jobs.get(name, []))
    return cancelled, [j for js in jobs.values() for j in js]


def poll_max() -> float:
    """The longest pause between two scheduler queries of a wait (HPCDL_POLL_MAX, default 60 s)."""
    return float(os.environ.get("HPCDL_POLL_MAX", "60"))


def backoff(first: float = 1.0, most: float | None = None) -> Iterator[float]:
    """Pauses between scheduler queries: `first` seconds, growing by half each time up to `most`."""
    pause, most = first, poll_max() if most is None else most
    while True:
        yield min(pause, most)
        pause *= 1.5


def _until_terminal(ask, timeout_s: float, cheap, poll_s: float | None) -> State:
    """Block until a terminal state or timeout_s; return the last state seen.

    `ask` queries the scheduler, with backed-off pauses (or every poll_s); `cheap` (or None) reads the
    run folder's own record every second in between, so an ended run is seen at once.
    """
    deadline = time.monotonic() + timeout_s
    pauses = backoff(poll_s, poll_s) if poll_s else backoff()
    current = ask()
    next_ask = time.monotonic() + next(pauses)
    while not current.is_terminal and time.monotonic() < deadline:
        time.sleep(max(0.0, min(1.0, next_ask - time.monotonic(), deadline - time.monotonic())))
        local = cheap() if cheap is not None else None
        if local is not None and local.is_terminal:
            return local
        if time.monotonic() >= next_ask:
            current = ask()
            next_ask = time.monotonic() + next(pauses)
    return current


def wait(run: RunDir, timeout_s: float, poll_s: float | None = None) -> State:
    """Block until the run ends or timeout_s passes. The scheduler is asked with backed-off pauses
    (every poll_s if given); the run's exit record is read every second in between."""
    sub = submission(run)
    backend = backends.get(sub["executor"])
    poll_s = poll_s or (1.0 if backend.cheap_queries else None)
    return _until_terminal(lambda: backend.state(run, sub), timeout_s, lambda: backend.ended(run), poll_s)


def wait_job(executor: str, job_id: str, timeout_s: float, poll_s: float | None = None) -> State:
    """Block until a job that is not a run (a sweep's collect job, its local sequence) ends."""
    backend = backends.get(executor)
    poll_s = poll_s or (1.0 if backend.cheap_queries else None)
    return _until_terminal(lambda: backend.job_state(job_id), timeout_s, None, poll_s)


def final_state(run: RunDir) -> State | None:
    """The state in the run's exit record, if the job wrote one."""
    ended = read_json(run.exit)
    return State.of(ended.get("state")) if isinstance(ended, dict) and ended.get("state") else None


def signals(run: RunDir) -> list[str]:
    """The signals that reached the run's job script, as its exit record names them (SIGTERM, ...)."""
    ended = read_json(run.exit)
    return list(ended.get("signals") or []) if isinstance(ended, dict) else []


def describe(run: RunDir, current: State) -> str:
    """A state with what ended it, as status, --wait and logs --follow print it: TERMINATED (SIGTERM)."""
    sent = signals(run) if current is State.TERMINATED else []
    return f"{current} ({', '.join(sent)})" if sent else str(current)


def status_rows(refs: tuple[str, ...], root: Path) -> list[dict]:
    """One row per run (the named ones, or every run under root), with a reason and a failure class
    for every run that did not complete."""
    from . import runs as runs_mod
    from . import triage

    found = [runs_mod.resolve(r, root) for r in refs] if refs else runs_mod.find_runs([root]) if root.is_dir() else []
    rows = []
    records = [read_json(r.submission) for r in found]
    current_states = states(found, records)
    used = usage(found, records)
    for run, record, current, job in zip(found, records, current_states, used, strict=True):
        spec = run.read_spec()
        record = record or {}
        row = {
            "run": run.run_id,
            "study": run.study,
            "strategy": spec.strategy if spec else None,
            "nodes": spec.nodes if spec else None,
            "gpus": spec.gpus if spec else None,
            "job_id": record.get("job_id"),
            "executor": record.get("executor"),
            "state": current,
            "signals": signals(run),
            "reason": None,
            "category": None,
            "evidence": None,
            "note": (read_json(run.exit) or {}).get("note"),  # e.g. a rank that died after recording success
            **{k: (job or {}).get(k) for k in USAGE},
            "folder": str(run.path),
        }
        if current.needs_triage:
            row["reason"] = triage.reason(run)
            row["category"], row["evidence"] = triage.classify(run, current)
        rows.append(row)
    return rows


def follow(run: RunDir, path: Path, poll_s: float) -> Iterator[str | tuple[str, str]]:
    """Yield new text of `path` as it grows, then ("end", state) once the run ends, or ("unknown", "")
    when no scheduler can tell its state for UNKNOWN_GIVE_UP_S."""
    sub = submission(run)
    backend = backends.get(sub["executor"])
    offset = 0
    unknown_since = None
    while True:
        current = backend.ended(run) or backend.state(run, sub)  # before the file: the last read gets all
        if current is not State.UNKNOWN:
            unknown_since = None
        elif time.monotonic() - (unknown_since := unknown_since or time.monotonic()) > UNKNOWN_GIVE_UP_S:
            yield ("unknown", "")
            return
        if path.exists():
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            if chunk:
                offset += len(chunk)
                yield chunk.decode(errors="replace")
        if current.is_terminal:
            yield ("end", current)
            return
        time.sleep(poll_s)


def wait_sweep(s, timeout_s: float) -> tuple[State, int]:
    """Block until a sweep's collect job ends, or without one until every run has ended (a sweep may be
    several arrays); return the collect job's state (or COMPLETED) and how many runs completed."""
    if s.collect_job_id:
        final = wait_job(s.executor, s.collect_job_id, timeout_s=timeout_s)
    else:
        cheap = backends.get(s.executor).cheap_queries

        def ask() -> State:
            return State.COMPLETED if all(x.is_terminal for x in states(s.runs)) else State.RUNNING

        final = _until_terminal(ask, timeout_s, None, 1.0 if cheap else None)
    return final, states(s.runs).count(State.COMPLETED)
