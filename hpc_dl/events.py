"""The one owner of the per-rank events format: writing it (Events) and reading it (read_rank, read_run).

Each rank appends JSON lines to RunDir.rank_events(rank), MLPerf-style: run_start, epoch_stop, eval,
run_stop. Every event is a JSON object with `event` (its name), `time` (unix seconds) and `rank`; metric
names carry their unit. Lines are flushed as written, so `hpcdl collect` and `hpcdl logs --follow` see a
running job, and a reader must expect a last line cut short: a line that is not such an object is
skipped and counted, never fatal. Cheap: no torch, no pandas (triage and the login node read it).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from .runs import RunDir, write_json


class Events:
    """One rank's events file and its human-readable log (rank 0's also goes to the job's log)."""

    def __init__(self, run: RunDir, rank: int):
        self.run, self.rank = run, rank
        run.events.mkdir(parents=True, exist_ok=True)
        run.logs.mkdir(parents=True, exist_ok=True)
        self._file = open(run.rank_events(rank), "a", buffering=1)
        self.log = _rank_logger(run, rank)

    def emit(self, event: str, **fields: Any) -> dict:
        record = {"event": event, "time": time.time(), "rank": self.rank, **fields}
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        return record

    def write_result(self, result: dict) -> None:
        if self.rank == 0:
            write_json(self.run.result, result)

    def close(self) -> None:
        self._file.close()
        for h in list(self.log.handlers):
            h.close()
            self.log.removeHandler(h)


def _rank_logger(run: RunDir, rank: int) -> logging.Logger:
    log = logging.getLogger(f"hpcdl.rank{rank}")
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = logging.Formatter(f"%(asctime)s [rank {rank}] %(levelname)s %(message)s")
    handlers: list[logging.Handler] = [logging.FileHandler(run.rank_log(rank))]
    if rank == 0:  # rank 0 also speaks on the job's log
        handlers.append(logging.StreamHandler(sys.stdout))
    for handler in handlers:
        handler.setFormatter(fmt)
        log.addHandler(handler)
    return log


def parse(text: str) -> tuple[list[dict], int]:
    """The events in one file's text, and how many non-blank lines were not valid events."""
    events, skipped = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if not isinstance(record, dict) or not isinstance(record.get("event"), str):
            skipped += 1
            continue
        events.append(record)
    return events, skipped


def read_rank(path: Path) -> tuple[list[dict], int]:
    """The events in one rank's file (none when it is missing or unreadable), and the lines skipped."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return [], 0
    return parse(text)


def read_run(run: RunDir) -> tuple[dict[int, list[dict]], int]:
    """Every rank's events, by rank, and the lines skipped over all the files."""
    by_rank: dict[int, list[dict]] = {}
    skipped = 0
    for path in run.event_files():
        events, bad = read_rank(path)
        by_rank[int(path.stem.split("-")[1])] = events
        skipped += bad
    return by_rank, skipped
