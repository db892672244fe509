"""submit, sweep, kfold, study: turn options into specs and points, submit them, optionally wait."""

from __future__ import annotations

from pathlib import Path

import click

from .. import catalog, strategies
from ..errors import UsageError
from . import show
from .options import apply, out_option, runs_dir_option, spec_options, spec_values, throttle_option


def preflight(spec, prof) -> list[str]:
    """The data root's warnings (what is missing is refused); dry runs too. Requirements of the strategy
    (horovod, mpirun) are checked when the job is really submitted."""
    from ..byo import check
    from ..preflight import check_data_root

    check(spec, prof)  # your model, data set or script: found, with the right parameters
    return check_data_root(spec, prof)


def runs_root(value: str | None) -> Path:
    from ..runs import default_root

    return Path(value) if value else default_root()


def _profile(profile: str | None, study: str):
    from .. import profiles
    from ..runs import check_study

    prof = profiles.load(profile)
    check_study(study)
    return prof


# `hpcdl submit --script train.py -- ARGS`: what follows -- goes to your script
SCRIPT_ARGS = click.argument("script_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- SCRIPT_ARGS]")


@click.command()
@click.option("--strategy", default="ddp", show_default=True, help=f"One of: {', '.join(strategies.STRATEGIES)}.")
@click.option("--nodes", type=int, default=1, show_default=True, help="Number of nodes.")
@click.option(
    "--gpus",
    type=int,
    default=1,
    show_default=True,
    help="GPUs per node; on a node without GPUs, worker processes per node.",
)
@click.option("--repeats", type=int, default=1, show_default=True, help="Submit the same job this many times.")
@spec_options()
@click.option("--dry-run", is_flag=True, help="Print the job script and submission parameters; submit nothing.")
@click.option("--wait", is_flag=True, help="Block until the job ends; exit with its status.")
@SCRIPT_ARGS
def submit(repeats, dry_run, wait, profile, templates, study, runs_dir, **fields) -> int:
    """Render a job script for a strategy and submit it (SLURM or this machine)."""
    from .. import control
    from .. import submit as sub
    from ..spec import JobSpec

    spec = JobSpec(**spec_values(fields))
    prof = _profile(profile, study)
    root = runs_root(runs_dir)
    if not isinstance(repeats, int) or repeats < 1:
        raise UsageError(f"invalid repeats: {repeats!r} (must be an integer >= 1)")
    show.warnings(preflight(spec, prof))
    if dry_run:
        run_id, run_path, rendered = sub.plan(spec, prof, root, study, templates)
        show.dry_run(run_id, run_path, prof.name, rendered)
        return 0
    submitted = []
    for _ in range(repeats):  # repeats are separate jobs: each gets its own run folder and allocation
        submitted.append(sub.submit(spec, prof, root, study, templates))
        show.submitted(submitted[-1], root)
    if not wait:
        return 0
    limit = spec.time_limit * 60 + 300
    worst = 0
    for s in submitted:
        state = control.wait(s.run, timeout_s=limit)
        show.waited(s.run.run_id, control.describe(s.run, state), state.is_terminal, limit)
        worst = worst or int(not state.is_success)
    return worst


# options of the commands that submit one array (sweep, kfold, study)
ARRAY = [
    click.option("--dry-run", is_flag=True, help="Print the points and the array's parameters; submit nothing."),
    click.option("--wait", is_flag=True, help="Block until every run and the collect job end."),
]


# the options of sweep besides the spec's (in --help order)
SWEEP = [
    click.option(
        "--strategy",
        "strategy_list",
        default="ddp",
        show_default=True,
        metavar="LIST",
        help=f"Strategies, comma-separated, from: {', '.join(strategies.STRATEGIES)}.",
    ),
    click.option(
        "--nodes", "nodes_list", default="1", show_default=True, metavar="LIST", help="Node counts, e.g. 1,2."
    ),
    click.option(
        "--gpus",
        "gpus_list",
        default="1,2",
        show_default=True,
        metavar="LIST",
        help="GPUs (or CPU workers) per node, e.g. 1,2,4.",
    ),
    click.option("--repeats", type=int, default=1, show_default=True, help="Runs of every point."),
    throttle_option(4, "At most this many array tasks at once (%k)."),
    out_option(None, "Where the collect job writes the report (default: results/<study>)."),
    click.option("--no-collect", is_flag=True, help="Do not chain a collect job after the array."),
    click.option(
        "--vary",
        "vary_items",
        multiple=True,
        metavar="FIELD=V1,V2",
        help="Another axis, e.g. --vary batch_size=32,64 --vary compression=none,fp16 (repeatable).",
    ),
    click.option(
        "--probe",
        "with_probes",
        is_flag=True,
        help="First measure the collectives on every shape of 2 or more workers (hpcdl probe), for hpcdl plan.",
    ),
    click.option(
        "--skip-invalid",
        is_flag=True,
        help="Leave out the points a strategy cannot run (e.g. a 1-worker pipeline) instead of failing.",
    ),
]


@click.command()
@apply(SWEEP)
@spec_options()
@apply(ARRAY)
@SCRIPT_ARGS
def sweep(
    vary_items,
    with_probes,
    skip_invalid,
    strategy_list,
    nodes_list,
    gpus_list,
    repeats,
    throttle,
    out,
    no_collect,
    dry_run,
    wait,
    profile,
    templates,
    study,
    runs_dir,
    **fields,
) -> int:
    """Submit strategies x nodes x GPUs x repeats as ONE job array, with a collect job chained after it.

    Every array task gets the sweep's largest allocation (SLURM gives all tasks of an array the same
    resources) and launches only its own point's nodes and GPUs. On the local profile the points run
    one after another, then collect.
    """
    from .. import probe as probe_mod
    from ..sweep import expand_with_skips, label, parse_list, parse_vary

    strategies_ = parse_list(strategy_list, "--strategy")
    vary = parse_vary(vary_items)
    nodes = parse_list(nodes_list, "--nodes", int)
    gpus = parse_list(gpus_list, "--gpus", int)
    base = spec_values(fields)
    prof = _profile(profile, study)
    points, skipped = expand_with_skips(base, strategies_, nodes, gpus, repeats, vary, skip_invalid)
    for line in skipped:
        click.echo(f"skipped {line}", err=True)
    out = None if no_collect else (out or Path("results") / study)
    probes = probe_mod.sweep_probes(prof, [p.spec for p in points]) if with_probes else []
    labels = [f"probe {q.nodes}x{q.gpus}" for q in probes] + [label(p, vary) for p in points]
    if dry_run:
        return _array_dry_run("sweep", points, labels, prof, throttle, out, probes)
    return _array_submit("sweep", points, prof, runs_root(runs_dir), study, out, templates, throttle, 1, wait, probes)


def _array_dry_run(kind: str, points, labels: list[str], prof, throttle: int, out: Path | None, probes=()) -> int:
    from .. import submit as sub

    show.warnings(preflight(points[0].spec, prof))
    specs = [p.spec for p in points] + list(probes)
    show.array_dry_run(kind, labels, sub.plan_sweep(specs, prof), prof.name, throttle, out)
    return 0


def _array_submit(
    kind, points, prof, root: Path, study: str, out, templates, throttle: int, parallel: int, wait: bool, probes=()
):
    """Submit a sweep or kfold as one array (+ collect), say where everything is, and wait if asked."""
    from .. import control
    from .. import submit as sub

    show.warnings(preflight(points[0].spec, prof))
    s = sub.submit_sweep(points, prof, root, study, out, templates, throttle, local_parallel=parallel, probes=probes)
    show.array_submitted(kind, s, throttle, out, root)
    if not wait:
        return 0
    limits = [p.spec.time_limit for p in points] + [q.time_limit for q in probes]
    final, done = control.wait_sweep(s, timeout_s=sum(limits) * 60 + 600)
    show.array_waited(kind, s, done, final, out)
    return 0 if done == len(s.runs) else 1


@click.command()
@click.option("--folds", type=int, default=5, show_default=True, help="K: the folds of the training set.")
@click.option(
    "--models",
    "models_list",
    default="mnist-cnn",
    show_default=True,
    metavar="LIST",
    help="Models to compare, comma-separated.",
)
@click.option(
    "--schedulers",
    "schedulers_list",
    default="none",
    show_default=True,
    metavar="LIST",
    help=f"Learning-rate schedules to compare, from: {', '.join(catalog.SCHEDULERS)}.",
)
@throttle_option(4, "At most this many folds at once.")
@out_option(None, "Where the collect job writes the report (default: results/<study>).")
@spec_options(exclude=("model", "scheduler"))
@apply(ARRAY)
def kfold(
    folds, models_list, schedulers_list, throttle, out, dry_run, wait, profile, templates, study, runs_dir, **fields
):
    """K-fold cross-validation: every fold x model x scheduler as ONE job array, then collect.

    The report gives each model's mean +- std held-out accuracy and the study's wall time against running
    the folds one after another. On the local profile --throttle folds run at once.
    """
    from ..spec import JobSpec
    from ..sweep import expand_kfold, label, parse_list

    models_ = parse_list(models_list, "--models")
    schedulers_ = parse_list(schedulers_list, "--schedulers")
    fixed = {"strategy": "kfold", "model": models_[0], "scheduler": schedulers_[0], "folds": max(folds, 2), "fold": 0}
    base = JobSpec(**spec_values(fields), **fixed)
    prof = _profile(profile, study)
    points = expand_kfold(base, folds, models_, schedulers_)
    out = out or Path("results") / study
    labels = [label(p) for p in points]
    if dry_run:
        return _array_dry_run("kfold", points, labels, prof, throttle, out)
    return _array_submit("kfold", points, prof, runs_root(runs_dir), study, out, templates, throttle, throttle, wait)


@click.group()
def study() -> None:
    """Named studies from YAML files (the shipped ones reproduce the seed studies at small scale)."""


@study.command("list")
def study_list() -> int:
    """List the shipped studies and what each checks."""
    from .. import studies

    for name in studies.available():
        s = studies.load(name)
        click.echo(f"{name:<24} {s.kind:<6} {s.claim}")
    return 0


@study.command("run")
@click.argument("ref", metavar="NAME_OR_FILE")
@click.option("--profile", default=None, help="Cluster profile (default as for submit).")
@out_option(None, "Where the collect job writes the report (default: results/<study name>).")
@throttle_option(None, "At most this many runs at once (default: the study's).")
@runs_dir_option
@apply(ARRAY)
def study_run(ref, profile, out, throttle, runs_dir, dry_run, wait) -> int:
    """Run a study: a sweep or a k-fold, as one job array, then collect."""
    from .. import profiles, studies

    st = studies.load(ref)
    prof = profiles.load(profile)
    out = out or Path("results") / st.name
    throttle = st.throttle if throttle is None else throttle
    points, skipped, labels = studies.expand(st)
    for line in skipped:
        click.echo(f"skipped {line}", err=True)
    click.echo(f"study {st.name}: {st.claim}")
    if dry_run:
        return _array_dry_run(st.kind, points, labels, prof, throttle, out)
    parallel = 1 if st.kind == "sweep" else throttle  # sweep timings must not overlap; folds may
    return _array_submit(st.kind, points, prof, runs_root(runs_dir), st.name, out, None, throttle, parallel, wait)


@click.command()
@click.argument("study")
@click.option("--profile", default=None, help="Cluster profile (default: the one the runs were submitted with).")
@throttle_option(4, "At most this many array tasks at once (%k).")
@out_option(None, "Where the collect job writes the report (default: results/<study>).")
@click.option("--no-collect", is_flag=True, help="Do not chain a collect job after the array.")
@runs_dir_option
@apply(ARRAY)
def rerun(study, profile, throttle, out, no_collect, runs_dir, dry_run, wait) -> int:
    """Submit again, as one array, the runs of a study that failed or never ran (in their own folders;
    a run cut short resumes from its checkpoint); collect then combines them with the completed ones."""
    from .. import control, profiles
    from .. import runs as runs_mod
    from .. import submit as sub

    root = runs_root(runs_dir)
    folder = Path(study) if Path(study).is_dir() else root / study
    found = runs_mod.find_runs([folder]) if folder.is_dir() else []
    if not found:
        raise UsageError(f"no runs in study {study!r} (looked in {folder})")
    todo = [(r, s) for r, s in zip(found, control.states(found), strict=True) if control.needs_rerun(s)]
    click.echo(f"study {folder.name}: {len(found)} run(s), {len(todo)} to run again")
    for run, state in todo:
        click.echo(f"  {run.run_id} ({state})")
    if not todo or dry_run:
        return 0
    prof = profiles.load(profile or (runs_mod.read_json(todo[0][0].profile) or {}).get("name"))
    out = None if no_collect else (out or Path("results") / folder.name)
    s = sub.rerun([r for r, _ in todo], prof, out, throttle)
    show.array_submitted("rerun", s, throttle, out, root)
    if not wait:
        return 0
    specs = [r.read_spec() for r, _ in todo]
    final, done = control.wait_sweep(s, timeout_s=sum(x.time_limit for x in specs if x) * 60 + 600)
    show.array_waited("rerun", s, done, final, out)
    return 0 if done == len(s.runs) else 1
