"""RunDir: the one owner of a run directory's layout. No other module builds these paths.

    <runs root>/<study>/<run id>/
        spec.json          the JobSpec
        profile.json       the resolved cluster profile
        job.sh             the rendered script: what --dry-run printed, and what runs
        submission.json    executor, job id, submit time, submission parameters
        job.log            the script's stdout and stderr, streamed while it runs
        exit.json          the script's exit: return code and final state (written by the job)
        cancel.json        written by `hpcdl cancel`
        stop.json          a request to stop after the current epoch (written before the time limit)
        submitit/          submitit's own folder (pickles, its logs)
        logs/rank-R.log    each rank's human-readable log
        events/rank-R.jsonl  each rank's JSON-lines events (run_start, epoch_stop, eval, run_stop)
        result.json        rank 0's summary, written at the end
        probe.json         a probe's record (`hpcdl probe`: collective times against message size)
        checkpoints/       snapshots, when the strategy takes them (checkpoints/last.pt: the latest)
        tensorboard/       TensorBoard event files, when the run logs them
        attempts/N/        what an earlier submission left (`hpcdl rerun` moves it there; checkpoints stay)

Every file is written atomically (temporary file + rename). A run id is created with an exclusive
mkdir, so two submissions never share one.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import RunNotFound, UsageError

if TYPE_CHECKING:
    from .spec import JobSpec

STUDY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MARKER = "spec.json"


def default_root() -> Path:
    return Path(os.environ.get("HPCDL_RUNS", "runs"))


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import (before any thread): os.umask can only be read by setting it


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and a rename; the file gets the mode open() would give it (0644
    under the usual umask 022), not mkstemp's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any | None:
    """The JSON in a file, or None if it is missing or not (yet) valid."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_study(study: str) -> str:
    if not STUDY_RE.fullmatch(study):
        raise UsageError(
            f"invalid study name {study!r} (letters, digits, '.', '_' and '-'; not starting with '.' or '-')"
        )
    return study


def new_run_id(strategy: str, nodes: int, gpus: int) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{strategy}-{nodes}x{gpus}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def study(self) -> str:
        return self.path.parent.name

    # -- the layout
    spec = property(lambda self: self.path / "spec.json")
    profile = property(lambda self: self.path / "profile.json")
    script = property(lambda self: self.path / "job.sh")
    submission = property(lambda self: self.path / "submission.json")
    job_log = property(lambda self: self.path / "job.log")
    exit = property(lambda self: self.path / "exit.json")
    cancel = property(lambda self: self.path / "cancel.json")
    stop = property(lambda self: self.path / "stop.json")
    submitit = property(lambda self: self.path / "submitit")
    logs = property(lambda self: self.path / "logs")
    events = property(lambda self: self.path / "events")
    result = property(lambda self: self.path / "result.json")
    probe = property(lambda self: self.path / "probe.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.pt")
    tensorboard = property(lambda self: self.path / "tensorboard")

    def read_spec(self) -> JobSpec | None:
        """The run's JobSpec as it was submitted, or None where the folder has none (yet)."""
        from .spec import JobSpec

        data = read_json(self.spec)
        return JobSpec.from_record(data) if isinstance(data, dict) else None

    def rank_log(self, rank: int) -> Path:
        return self.logs / f"rank-{rank}.log"

    def rank_events(self, rank: int) -> Path:
        return self.events / f"rank-{rank}.jsonl"

    def event_files(self) -> list[Path]:
        return sorted(self.events.glob("rank-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))

    def rank_logs(self) -> list[Path]:
        return sorted(self.logs.glob("rank-*.log"), key=lambda p: int(p.stem.split("-")[1]))

    # -- creation
    @classmethod
    def create(cls, root: Path, study: str, run_id: str) -> RunDir:
        """Make the directory exclusively; FileExistsError if the id is taken."""
        parent = Path(root) / check_study(study)
        parent.mkdir(parents=True, exist_ok=True)
        path = parent / run_id
        path.mkdir()  # exclusive: never two runs in one folder
        for sub in ("logs", "events", "submitit", "checkpoints"):
            (path / sub).mkdir()
        return cls(path.resolve())

    def is_run(self) -> bool:
        return (self.path / MARKER).is_file()

    # what one submission leaves behind; spec, profile, script and checkpoints belong to the run
    OUTPUTS = ("submission.json", "job.log", "exit.json", "cancel.json", "stop.json", "result.json", "logs", "events")

    def archive_attempt(self) -> Path:
        """Move this submission's outputs to attempts/<N>/ (N = 1, 2, ...) so that the run can be
        submitted again with a clean folder; the checkpoints stay, so the new job resumes from them."""
        attempts = self.path / "attempts"
        attempts.mkdir(exist_ok=True)
        n = 1 + max((int(p.name) for p in attempts.iterdir() if p.name.isdigit()), default=0)
        target = attempts / str(n)
        target.mkdir()
        for name in self.OUTPUTS:
            if (self.path / name).exists():
                os.replace(self.path / name, target / name)
        for sub in ("logs", "events"):
            (self.path / sub).mkdir(exist_ok=True)
        return target


@dataclass(frozen=True)
class StudyDir:
    """The one owner of a study folder's layout: its runs, the submitit folder of its sweeps and the
    record of each sweep.

        <runs root>/<study>/
            <run id>/              one RunDir per point
            .submitit/             submitit's folder for the sweep's array and collect jobs
            sweep-<job id>.json    one record per sweep submitted into this study (named after its first
                                   array; a sweep larger than the cluster's MaxArraySize has several)
    """

    path: Path

    @classmethod
    def of(cls, root: Path, study: str) -> StudyDir:
        return cls(Path(root) / check_study(study))

    @classmethod
    def find(cls, ref: str, root: Path) -> StudyDir | None:
        """The study a reference names (its folder, or its name under root); None if it names a run or
        no folder."""
        path = Path(ref)
        if (path / MARKER).is_file():
            return None
        for folder in (path, Path(root) / ref):
            if folder.is_dir() and not (folder / MARKER).is_file():
                return cls(folder.resolve())
        return None

    @property
    def name(self) -> str:
        return self.path.name

    submitit = property(lambda self: self.path / ".submitit")

    def run(self, run_id: str) -> RunDir:
        return RunDir(self.path / run_id)

    def sweep_record(self, job_id: str) -> Path:
        return self.path / f"sweep-{job_id}.json"

    def sweep_records(self) -> list[Path]:
        return sorted(self.path.glob("sweep-*.json"))


def find_runs(paths: list[Path]) -> list[RunDir]:
    """Every run directory under the given folders (a run folder itself counts), sorted by path."""
    found: dict[Path, RunDir] = {}
    for top in paths:
        top = Path(top).resolve()  # once: the folders found below it are then absolute already
        if (top / MARKER).is_file():
            found[top] = RunDir(top)
            continue
        for marker in top.rglob(MARKER):
            found[marker.parent] = RunDir(marker.parent)
    return [found[k] for k in sorted(found)]


def resolve(ref: str, root: Path | None = None) -> RunDir:
    """A run given by its folder, or by its id (or a unique prefix of it) under the runs root."""
    path = Path(ref)
    if (path / MARKER).is_file():
        return RunDir(path.resolve())
    root = Path(root) if root is not None else default_root()
    matches = [r for r in find_runs([root]) if r.run_id.startswith(ref)] if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFound(f"no run {ref!r} (give a run folder, or a run id under {root})")
    raise RunNotFound(f"run {ref!r} is ambiguous: {', '.join(m.run_id for m in matches[:5])}")
