"""The login-node submission flow: the only place that makes run folders and hands them to a backend.

One flow for every backend: render -> make the run directory -> write spec, profile and script ->
hand `run_script` (hpc_dl/node/jobscript.py) to the backend -> record the job id. Backends (hpc_dl/backends/)
fill a declared interface. If anything fails after the run directory was made, it is removed: a failed
submission leaves nothing behind. States, waiting and cancelling live in hpc_dl/control.py.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .backends.base import ArrayHow
from .errors import HpcdlError, SubmitError, UsageError
from .profiles import ClusterProfile
from .render import RenderContext, Rendered, render
from .runs import RunDir, StudyDir, new_run_id, write_atomic, write_json
from .spec import JobSpec

# queued jobs pickled before the split refer to hpc_dl.submit.run_script / run_sequence / collect_study
from .node.jobscript import collect_study, run_script, run_sequence  # noqa: E402,F401  isort: skip


@dataclass(frozen=True)
class Submission:
    run: RunDir
    job_id: str
    executor: str


def plan(
    spec: JobSpec,
    profile: ClusterProfile,
    runs_root: Path,
    study: str,
    templates: Path | None = None,
    run_id: str | None = None,
    template: str | None = None,
) -> tuple[str, Path, Rendered]:
    """Everything a submission would do, computed and checked, with nothing written (the dry run)."""
    run_id = run_id or new_run_id(spec.strategy, spec.nodes, spec.gpus)
    run_path = StudyDir.of(Path(runs_root), study).run(run_id).path.resolve()
    ctx = RenderContext(run_path, run_id, python=sys.executable, templates=templates, template=template)
    return run_id, run_path, render(spec, profile, ctx)


def _prepare(
    spec: JobSpec,
    profile: ClusterProfile,
    runs_root: Path,
    study: str,
    templates: Path | None,
    template: str | None = None,
) -> tuple[RunDir, Rendered]:
    """Render, make the run folder exclusively, write spec, profile and script. Nothing is submitted."""
    from .preflight import preflight

    if template is None:  # a training job: what it needs must be there
        preflight(spec, profile)
    for _ in range(5):
        run_id, _path, rendered = plan(spec, profile, runs_root, study, templates, template=template)
        try:
            run = RunDir.create(Path(runs_root), study, run_id)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - five collisions of a time stamp and 32 random bits
        raise SubmitError(f"could not make a new run folder under {runs_root}/{study}")
    try:
        write_json(run.spec, spec.replace(exclusive=profile.exclusive_for(spec)).to_dict())  # as it was asked
        write_json(run.profile, profile.to_dict())
        write_atomic(run.script, rendered.script)
        run.script.chmod(0o755)
    except BaseException:
        shutil.rmtree(run.path, ignore_errors=True)
        raise
    return run, rendered


def _record(
    run: RunDir, executor: str, job_id: str, profile: ClusterProfile, sbatch: dict, parameters: dict, **extra: Any
) -> None:
    write_json(
        run.submission,
        {
            "executor": executor,
            "job_id": job_id,
            "submitted_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "submit_host": socket.gethostname(),
            "profile": profile.name,
            "sbatch": sbatch,
            "parameters": parameters,
            "hpcdl": __version__,
            **extra,
        },
    )


def _undo(made: list[RunDir], exc: BaseException):
    """A failed submission leaves nothing behind; errors become one line."""
    for run in made:
        shutil.rmtree(run.path, ignore_errors=True)
    if isinstance(exc, HpcdlError) or not isinstance(exc, Exception):
        raise exc
    raise SubmitError(f"submission failed: {_one_line(exc)}") from None


def submit(
    spec: JobSpec,
    profile: ClusterProfile,
    runs_root: Path,
    study: str,
    templates: Path | None = None,
    template: str | None = None,
) -> Submission:
    """Submit one job: the spec's training, or another template over the same environment (doctor)."""
    from .runs import check_study

    check_study(study)
    run, rendered = _prepare(spec, profile, runs_root, study, templates, template)
    try:
        job_id = profile.backend.submit(run, spec, rendered)
        _record(run, rendered.executor, job_id, profile, rendered.sbatch, rendered.parameters)
    except BaseException as exc:
        _undo([run], exc)
    return Submission(run=run, job_id=job_id, executor=rendered.executor)


@dataclass(frozen=True)
class SweepSubmission:
    runs: list[RunDir]
    job_id: str  # the array's job id (SLURM) or the local job that runs the points in turn
    collect_job_id: str | None
    executor: str
    sbatch: dict[str, str]  # the allocation every array task gets
    record: Path
    arrays: tuple[str, ...] = ()  # every array's id, job_id first (more than one past the cluster's MaxArraySize)


def plan_sweep(points, profile: ClusterProfile) -> dict[str, str]:
    """Check every point against the cluster; return the sbatch options of the array's allocation."""
    from .render import sbatch_options
    from .sweep import largest

    for p in points:
        profile.check(getattr(p, "spec", p))
    return sbatch_options(largest(points), profile)


def submit_sweep(
    points,
    profile: ClusterProfile,
    runs_root: Path,
    study: str,
    out: Path | None,
    templates: Path | None = None,
    throttle: int = 4,
    local_parallel: int = 1,
    probes: list[JobSpec] = (),
) -> SweepSubmission:
    """Every point in one job array (throttled), and, unless out is None, a collect job chained after it.
    Probes (`sweep --probe`: probe.sweep_probes) are the array's first tasks, in the same study."""
    from .probe import TEMPLATE
    from .runs import check_study

    check_study(study)
    check_throttle(throttle)
    specs = [p.spec for p in points]
    plan_sweep(specs + list(probes), profile)
    made: list[RunDir] = []
    try:
        for spec in probes:
            made.append(_prepare(spec, profile, runs_root, study, templates, template=TEMPLATE)[0])
        for spec in specs:
            made.append(_prepare(spec, profile, runs_root, study, templates)[0])
    except BaseException as exc:
        _undo(made, exc)
    return _submit_array(made, specs + list(probes), profile, out, throttle, local_parallel, undo=True)


def rerun(runs: list[RunDir], profile: ClusterProfile, out: Path | None, throttle: int = 4) -> SweepSubmission:
    """Submit runs that failed or never ran again, in their own folders, as one array (+ collect).

    Each run's earlier outputs move to attempts/<N>/; its checkpoint stays, so a run that was cut short
    resumes where it stopped. Collect then sees every point of the study: the ones that completed
    before and the ones run again.
    """
    check_throttle(throttle)
    specs = [r.read_spec() or JobSpec() for r in runs]
    plan_sweep(specs, profile)
    for run in runs:
        run.archive_attempt()
    return _submit_array(runs, specs, profile, out, throttle, 1, undo=False)


def check_throttle(throttle: int) -> None:
    if not isinstance(throttle, int) or isinstance(throttle, bool) or throttle < 1:
        raise UsageError(f"invalid throttle: {throttle!r} (must be an integer >= 1)")


def _submit_array(made, specs, profile, out, throttle: int, parallel: int, undo: bool) -> SweepSubmission:
    """Hand run folders that are ready to the backend as arrays (one, or several past its MaxArraySize, each
    after the one before) and a collect job after them; record every run's submission and the sweep.
    The array's allocation takes its name and partition from the first training spec, never a probe's."""
    from .probe import is_probe_spec

    specs = sorted(specs, key=is_probe_spec)
    sbatch = plan_sweep(specs, profile)
    study = StudyDir(made[0].path.parent)
    out = None if out is None else Path(out).resolve()
    try:
        job_ids, arrays, collect_id = _arrays_then_collect(
            profile.backend, made, specs, sbatch, study, out, throttle, parallel
        )
        for run, jid in zip(made, job_ids, strict=True):
            _record(
                run,
                profile.scheduler,
                jid,
                profile,
                sbatch,
                {},
                array=profile.backend.array_of(jid),
                collect_job_id=collect_id,
            )
        record = study.sweep_record(arrays[0])
        write_json(
            record,
            {
                "executor": profile.scheduler,
                "job_id": arrays[0],
                "arrays": list(arrays),
                "collect_job_id": collect_id,
                "throttle": throttle,
                "sbatch": sbatch,
                "out": None if out is None else str(out),
                "runs": [r.run_id for r in made],
            },
        )
    except BaseException as exc:
        if not undo:
            raise
        _undo(made, exc)
    return SweepSubmission(made, arrays[0], collect_id, profile.scheduler, sbatch, record, arrays)


def _arrays_then_collect(backend, made, specs, sbatch, study: StudyDir, out, throttle: int, parallel: int):
    """The one sweep flow over the backend's hooks: (each run's job id, the arrays, the collect job id).
    Arrays queued before a failure are cancelled: their run folders are about to go."""
    from .sweep import array_chunks, largest

    big, job_ids, arrays = largest(specs), [], []
    chunks = array_chunks(made, backend.max_array_size() or len(made))
    inside = out if backend.collects_in_array else None
    try:
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            how = ArrayHow(
                study.submitit, throttle, arrays[-1] if arrays else None, parallel, study.path, inside if last else None
            )
            job_ids += backend.submit_array(chunk, big, sbatch, how)
            arrays.append(backend.array_of(job_ids[-1]))
        if out is None:
            return job_ids, tuple(arrays), None
        if backend.collects_in_array:
            return job_ids, tuple(arrays), arrays[-1]
        return job_ids, tuple(arrays), backend.submit_collect(arrays, sbatch, study.submitit, study.path, out)
    except BaseException:
        if arrays:
            backend.cancel_all([], arrays)
        raise


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__
