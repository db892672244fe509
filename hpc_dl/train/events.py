"""Per-rank JSON-lines events (MLPerf-style: run_start, epoch_stop, eval, run_stop) and the rank's log.

Every event carries `event`, `time` (unix seconds) and `rank`. Metric names carry their unit.
Lines are flushed as written, so `hpcdl collect` and `hpcdl logs --follow` see a running job.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from ..runs import RunDir, write_json


class Events:
    def __init__(self, run: RunDir, rank: int):
        self.run, self.rank = run, rank
        run.events.mkdir(parents=True, exist_ok=True)
        run.logs.mkdir(parents=True, exist_ok=True)
        self._file = open(run.rank_events(rank), "a", buffering=1)
        self.log = logging.getLogger(f"hpcdl.rank{rank}")
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        fmt = logging.Formatter(f"%(asctime)s [rank {rank}] %(levelname)s %(message)s")
        handler = logging.FileHandler(run.rank_log(rank))
        handler.setFormatter(fmt)
        self.log.addHandler(handler)
        if rank == 0:  # rank 0 also speaks on the job's log
            console = logging.StreamHandler(sys.stdout)
            console.setFormatter(fmt)
            self.log.addHandler(console)

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


def rank_dir(run_dir: Path) -> RunDir:
    return RunDir(Path(run_dir).resolve())
