"""The hpcdl command line: parse, call the library, turn its errors into one line and an exit code.

Heavy modules (torch, pandas, submitit) are imported inside the commands that need them, so
`hpcdl --help` on a login node is instant.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from . import __version__, catalog, strategies
from .errors import HpcdlError, UsageError


class HpcdlGroup(click.Group):
    """Every error, click's or ours, is one line on stderr and a non-zero exit; never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name or "hpcdl", complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except HpcdlError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except Exception as exc:  # a bug in hpcdl: still one line, with a way to see more
            if os.environ.get("HPCDL_DEBUG"):
                raise
            text = " ".join(str(exc).split())[:300]
            click.echo(
                f"Error: internal error: {type(exc).__name__}: {text} (set HPCDL_DEBUG=1 for the traceback "
                "and please report it)",
                err=True,
            )
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _runs_root(value: str | None) -> Path:
    from .runs import default_root

    return Path(value) if value else default_root()


UNKNOWN_GIVE_UP_S = 60  # `logs --follow` stops when no scheduler can tell the state for this long

runs_dir_option = click.option(
    "--runs-dir",
    metavar="DIR",
    default=None,
    help="Root of the run folders (default: $HPCDL_RUNS or ./runs).",
)


@click.group(
    name="hpcdl", cls=HpcdlGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="hpcdl")
def cli() -> None:
    """Distributed deep-learning experiments, from a SLURM login node to a scaling report.

    \b
    hpcdl submit --strategy ddp --nodes 1 --gpus 2      train, on the cluster or on this machine
    hpcdl status / logs RUN --follow / cancel RUN       watch and control runs
    hpcdl collect runs/                                 scaling table, CSV, Markdown and plots
    """


# ---------------------------------------------------------------------------------------------------- submit


def _parse_sbatch(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid --sbatch {item!r} (use KEY=VALUE, e.g. --sbatch account=myproject)")
        out[key.lstrip("-")] = value
    return out


def _spec_options(f):
    """The JobSpec flags that submit and sweep share (all but strategy, nodes and gpus)."""
    options = [
        click.option(
            "--cpus-per-task", type=int, default=None, help="CPU threads per worker (default: the profile's)."
        ),
        click.option("--model", default="mnist-cnn", show_default=True, help=f"One of: {', '.join(catalog.MODELS)}."),
        click.option(
            "--dataset", default="fashion-mnist", show_default=True, help=f"One of: {', '.join(catalog.DATASETS)}."
        ),
        click.option(
            "--data-root", default=None, metavar="DIR", help="Folder that holds the data set (never downloaded)."
        ),
        click.option("--train-samples", type=int, default=None, help="Use only the first N training images."),
        click.option("--test-samples", type=int, default=None, help="Use only the first N test images."),
        click.option(
            "--image-size", type=int, default=None, help="Resize images to this side (default: as the model needs)."
        ),
        click.option("--epochs", type=int, default=1, show_default=True),
        click.option("--batch-size", type=int, default=64, show_default=True, help="Batch size per worker."),
        click.option("--lr", type=float, default=0.01, show_default=True, help="Learning rate."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option(
            "--precision", default="fp32", show_default=True, help=f"One of: {', '.join(catalog.PRECISIONS)}."
        ),
        click.option(
            "--time",
            "time_limit",
            default="60",
            show_default=True,
            metavar="TIME",
            help="Time limit: minutes, HH:MM:SS or D-HH:MM:SS.",
        ),
        click.option("--partition", default=None, help="SLURM partition (default: the profile's)."),
        click.option("--gpu-type", default=None, help="GPU type for --gres (default: the partition's)."),
        click.option("--job-name", default=None, help="Job name (default: hpcdl-<strategy>)."),
        click.option(
            "--sbatch",
            "sbatch_opts",
            multiple=True,
            metavar="KEY=VALUE",
            help="Extra sbatch option, e.g. --sbatch account=myproj (repeatable).",
        ),
        click.option("--scheduler", default=None, help=f"Learning-rate schedule: {', '.join(catalog.SCHEDULERS)}."),
        click.option("--compression", default=None, help="horovod: allreduce compression, none or fp16."),
        click.option(
            "--backward-passes",
            type=int,
            default=None,
            help="horovod: backward passes per allreduce (gradient accumulation).",
        ),
        click.option(
            "--average",
            default=None,
            metavar="once|every:K",
            help="psgd: average parameters once at the end, or every K steps.",
        ),
        click.option("--stages", type=int, default=None, help="pipeline: stages (one per rank; default: all ranks)."),
        click.option("--microbatches", type=int, default=None, help="pipeline: micro-batches per batch (default 4)."),
        click.option(
            "--profile",
            default=None,
            help="Cluster profile (default: local without sbatch, else $HPCDL_PROFILE or discovery).",
        ),
        click.option(
            "--templates",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Folder of your own templates; they win over the shipped ones.",
        ),
        click.option("--study", default="default", show_default=True, help="Group runs under <runs-dir>/<study>/."),
        runs_dir_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _spec_and_profile(time_limit: str, sbatch_opts: tuple[str, ...], profile: str | None, study: str, **fields):
    from . import profiles
    from .runs import check_study
    from .spec import JobSpec, parse_time

    spec = JobSpec(time_limit=parse_time(time_limit), sbatch=_parse_sbatch(sbatch_opts), **fields)
    prof = profiles.load(profile)
    check_study(study)
    return spec, prof


@cli.command()
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
@_spec_options
@click.option("--dry-run", is_flag=True, help="Print the job script and submission parameters; submit nothing.")
@click.option("--wait", is_flag=True, help="Block until the job ends; exit with its status.")
def submit(
    repeats: int,
    dry_run: bool,
    wait: bool,
    profile: str | None,
    templates: Path | None,
    study: str,
    runs_dir: str | None,
    time_limit: str,
    sbatch_opts: tuple[str, ...],
    **fields,
) -> int:
    """Render a job script for a strategy and submit it (SLURM or this machine)."""
    from . import submit as sub

    spec, prof = _spec_and_profile(time_limit, sbatch_opts, profile, study, **fields)
    root = _runs_root(runs_dir)
    if not isinstance(repeats, int) or repeats < 1:
        raise UsageError(f"invalid repeats: {repeats!r} (must be an integer >= 1)")
    if dry_run:
        run_id, run_path, rendered = sub.plan(spec, prof, root, study, templates)
        click.echo(rendered.script, nl=False)
        click.echo("\n# ---- submission (dry run: nothing was submitted)")
        for line in [
            f"run: {run_id}",
            f"folder: {run_path}",
            f"profile: {prof.name}",
            *rendered.describe().splitlines(),
        ]:
            click.echo(f"# {line}")
        return 0
    submitted = []
    for _ in range(repeats):  # repeats are separate jobs: each gets its own run folder and allocation
        s = sub.submit(spec, prof, root, study, templates)
        submitted.append(s)
        click.echo(f"submitted run {s.run.run_id} (job {s.job_id}, {s.executor} executor)")
        click.echo(f"  folder  {s.run.path}")
        click.echo(f"  log     {s.run.job_log}")
        click.echo(f"  ranks   {s.run.logs}/rank-<R>.log")
        click.echo(f"  follow  hpcdl logs {s.run.run_id} --runs-dir {root} --follow")
    if not wait:
        return 0
    limit = spec.time_limit * 60 + 300
    worst = 0
    for s in submitted:
        state = sub.wait(s.run, timeout_s=limit)
        if state not in sub.TERMINAL:
            click.echo(
                f"run {s.run.run_id}: still {state} after waiting {limit} s (its time limit + 5 min); not waiting on"
            )
            worst = 1
            continue
        click.echo(f"run {s.run.run_id}: {state}")
        worst = worst or (0 if state == "COMPLETED" else 1)
    return worst


# ---------------------------------------------------------------------------------------------------- sweep


@cli.command()
@click.option(
    "--strategy",
    "strategy_list",
    default="ddp",
    show_default=True,
    metavar="LIST",
    help=f"Strategies, comma-separated, from: {', '.join(strategies.STRATEGIES)}.",
)
@click.option("--nodes", "nodes_list", default="1", show_default=True, metavar="LIST", help="Node counts, e.g. 1,2.")
@click.option(
    "--gpus",
    "gpus_list",
    default="1,2",
    show_default=True,
    metavar="LIST",
    help="GPUs (or CPU workers) per node, e.g. 1,2,4.",
)
@click.option("--repeats", type=int, default=1, show_default=True, help="Runs of every point.")
@click.option("--throttle", type=int, default=4, show_default=True, help="At most this many array tasks at once (%k).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the collect job writes the report (default: results/<study>).",
)
@click.option("--no-collect", is_flag=True, help="Do not chain a collect job after the array.")
@click.option(
    "--vary",
    "vary_items",
    multiple=True,
    metavar="FIELD=V1,V2",
    help="Another axis, e.g. --vary batch_size=32,64 --vary compression=none,fp16 (repeatable).",
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Leave out the points a strategy cannot run (e.g. a 1-worker pipeline) instead of failing.",
)
@_spec_options
@click.option("--dry-run", is_flag=True, help="Print the points and the array's parameters; submit nothing.")
@click.option("--wait", is_flag=True, help="Block until the sweep and its collect job end.")
def sweep(
    vary_items: tuple[str, ...],
    skip_invalid: bool,
    strategy_list: str,
    nodes_list: str,
    gpus_list: str,
    repeats: int,
    throttle: int,
    out: Path | None,
    no_collect: bool,
    dry_run: bool,
    wait: bool,
    profile: str | None,
    templates: Path | None,
    study: str,
    runs_dir: str | None,
    time_limit: str,
    sbatch_opts: tuple[str, ...],
    **fields,
) -> int:
    """Submit strategies x nodes x GPUs x repeats as ONE job array, with a collect job chained after it.

    Every array task gets the sweep's largest allocation (SLURM gives all tasks of an array the same
    resources) and launches only its own point's nodes and GPUs. On the local profile the points run
    one after another, then collect.
    """
    from .sweep import expand_with_skips, parse_list, parse_vary

    strategies_ = parse_list(strategy_list, "--strategy")
    vary = parse_vary(vary_items)
    nodes = parse_list(nodes_list, "--nodes", int)
    gpus = parse_list(gpus_list, "--gpus", int)
    from . import profiles
    from .runs import check_study
    from .spec import parse_time

    base = {"time_limit": parse_time(time_limit), "sbatch": _parse_sbatch(sbatch_opts), **fields}
    prof = profiles.load(profile)
    check_study(study)
    points, skipped = expand_with_skips(base, strategies_, nodes, gpus, repeats, vary, skip_invalid)
    for line in skipped:
        click.echo(f"skipped {line}", err=True)
    out = None if no_collect else (out or Path("results") / study)
    labels = [
        f"{p.spec.strategy} {p.spec.nodes}x{p.spec.gpus}{''.join(f' {k}={getattr(p.spec, k)}' for k in vary)} "
        f"repeat {p.repeat}"
        for p in points
    ]
    if dry_run:
        return _array_dry_run("sweep", points, labels, prof, throttle, out)
    return _array_submit("sweep", points, prof, _runs_root(runs_dir), study, out, templates, throttle, 1, wait)


def _array_dry_run(kind: str, points, labels: list[str], prof, throttle: int, out: Path | None) -> int:
    """What a sweep or kfold would submit: the array's allocation and every point."""
    from . import submit as sub

    sbatch = sub.plan_sweep(points, prof)
    click.echo(
        f"# {kind}: {len(points)} point(s) as one job array, at most {throttle} at once (dry run: nothing "
        "was submitted)"
    )
    click.echo(f"# every task's allocation ({prof.name}):")
    for key, value in sbatch.items():
        click.echo(f"#   {key}: {value}")
    for i, label in enumerate(labels):
        click.echo(f"# [{i}] {label}")
    click.echo(f"# then: collect into {out}" if out else "# then: no collect job")
    return 0


def _array_submit(
    kind: str,
    points,
    prof,
    root: Path,
    study: str,
    out: Path | None,
    templates: Path | None,
    throttle: int,
    parallel: int,
    wait: bool,
) -> int:
    """Submit a sweep or kfold as one array (+ collect), say where everything is, and wait if asked."""
    from . import submit as sub

    s = sub.submit_sweep(points, prof, root, study, out, templates, throttle, local_parallel=parallel)
    click.echo(
        f"submitted {kind} of {len(s.runs)} run(s) as job {s.job_id} ({s.executor} executor, at most "
        f"{throttle} at once)"
    )
    if s.collect_job_id and s.executor == "local":
        click.echo(f"  collect  in the same local job, after the runs -> {out}")
    elif s.collect_job_id:
        click.echo(f"  collect  job {s.collect_job_id} after it (afterany) -> {out}")
    click.echo(f"  runs     {s.runs[0].path.parent}")
    click.echo(f"  record   {s.record}")
    click.echo(f"  watch    hpcdl status --runs-dir {root}")
    if not wait:
        return 0
    limit = sum(p.spec.time_limit for p in points) * 60 + 600
    final = sub.wait_job(s.executor, s.collect_job_id or s.job_id, timeout_s=limit)
    done = [sub.state(r) for r in s.runs].count("COMPLETED")
    click.echo(f"{kind} {s.job_id}: {done} of {len(s.runs)} run(s) completed" + (f"; collect {final}" if out else ""))
    if out and (Path(out) / "scaling.md").exists():
        click.echo(f"  table    {Path(out) / 'scaling.md'}")
        click.echo(f"  plots    {Path(out) / 'throughput.png'}, {Path(out) / 'speedup.png'}")
    return 0 if done == len(s.runs) else 1


# ---------------------------------------------------------------------------------------------------- kfold


@cli.command()
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
@click.option("--throttle", type=int, default=4, show_default=True, help="At most this many folds at once.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the collect job writes the report (default: results/<study>).",
)
@_spec_options
@click.option("--dry-run", is_flag=True, help="Print the runs and the array's parameters; submit nothing.")
@click.option("--wait", is_flag=True, help="Block until every fold and the collect job end.")
def kfold(
    folds: int,
    models_list: str,
    schedulers_list: str,
    throttle: int,
    out: Path | None,
    dry_run: bool,
    wait: bool,
    profile: str | None,
    templates: Path | None,
    study: str,
    runs_dir: str | None,
    time_limit: str,
    sbatch_opts: tuple[str, ...],
    model: str,
    scheduler: str | None,
    **fields,
) -> int:
    """K-fold cross-validation: every fold x model x scheduler as ONE job array, then collect.

    The report gives each model's mean +- std held-out accuracy and the study's wall time against running
    the folds one after another. On the local profile --throttle folds run at once.
    """
    from .sweep import expand_kfold, parse_list

    models_ = parse_list(models_list, "--models")
    schedulers_ = parse_list(schedulers_list, "--schedulers")
    base, prof = _spec_and_profile(
        time_limit,
        sbatch_opts,
        profile,
        study,
        strategy="kfold",
        model=models_[0],
        scheduler=schedulers_[0],
        folds=max(folds, 2),
        fold=0,
        **fields,
    )
    points = expand_kfold(base, folds, models_, schedulers_)
    out = out or Path("results") / study
    labels = [f"{p.spec.model} scheduler {p.spec.scheduler} fold {p.spec.fold + 1}/{folds}" for p in points]
    if dry_run:
        return _array_dry_run("kfold", points, labels, prof, throttle, out)
    return _array_submit("kfold", points, prof, _runs_root(runs_dir), study, out, templates, throttle, throttle, wait)


# ---------------------------------------------------------------------------------------------------- study


@cli.group()
def study() -> None:
    """Named studies from YAML files (the shipped ones reproduce the seed studies at small scale)."""


@study.command("list")
def study_list() -> int:
    """List the shipped studies and what each checks."""
    from . import studies

    for name in studies.available():
        s = studies.load(name)
        click.echo(f"{name:<24} {s.kind:<6} {s.claim}")
    return 0


@study.command("run")
@click.argument("ref", metavar="NAME_OR_FILE")
@click.option("--profile", default=None, help="Cluster profile (default as for submit).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the collect job writes the report (default: results/<study name>).",
)
@click.option("--throttle", type=int, default=None, help="At most this many runs at once (default: the study's).")
@runs_dir_option
@click.option("--dry-run", is_flag=True, help="Print the runs and the array's parameters; submit nothing.")
@click.option("--wait", is_flag=True, help="Block until every run and the collect job end.")
def study_run(
    ref: str,
    profile: str | None,
    out: Path | None,
    throttle: int | None,
    runs_dir: str | None,
    dry_run: bool,
    wait: bool,
) -> int:
    """Run a study: a sweep or a k-fold, as one job array, then collect."""
    from . import profiles, studies
    from .sweep import expand_kfold, expand_with_skips, parse_vary

    st = studies.load(ref)
    prof = profiles.load(profile)
    out = out or Path("results") / st.name
    throttle = throttle or st.throttle
    o = st.options
    if st.kind == "sweep":
        vary = parse_vary([f"{k}={','.join(str(v) for v in vs)}" for k, vs in (o.get("vary") or {}).items()])
        points, skipped = expand_with_skips(
            st.spec,
            o.get("strategy", ["ddp"]),
            o.get("nodes", [1]),
            o.get("gpus", [1]),
            int(o.get("repeats", 1)),
            vary,
            bool(o.get("skip_invalid", False)),
        )
        for line in skipped:
            click.echo(f"skipped {line}", err=True)
        labels = [
            f"{p.spec.strategy} {p.spec.nodes}x{p.spec.gpus}"
            f"{''.join(f' {k}={getattr(p.spec, k)}' for k in vary)} repeat {p.repeat}"
            for p in points
        ]
        parallel = 1
    else:
        from .spec import JobSpec

        models = o.get("models", ["mnist-cnn"])
        schedulers = o.get("schedulers", ["none"])
        folds = int(o.get("folds", 5))
        base = JobSpec(
            **{
                **st.spec,
                "strategy": "kfold",
                "model": models[0],
                "scheduler": schedulers[0],
                "folds": max(folds, 2),
                "fold": 0,
            }
        )
        points = expand_kfold(base, folds, models, schedulers)
        labels = [f"{p.spec.model} scheduler {p.spec.scheduler} fold {p.spec.fold + 1}/{folds}" for p in points]
        parallel = throttle
    click.echo(f"study {st.name}: {st.claim}")
    if dry_run:
        return _array_dry_run(st.kind, points, labels, prof, throttle, out)
    return _array_submit(st.kind, points, prof, _runs_root(runs_dir), st.name, out, None, throttle, parallel, wait)


# ---------------------------------------------------------------------------------------------------- status


def _status_rows(refs: tuple[str, ...], root: Path) -> list[dict]:
    from . import runs as runs_mod
    from . import submit as sub
    from . import triage

    if refs:
        found = [runs_mod.resolve(r, root) for r in refs]
    else:
        found = runs_mod.find_runs([root]) if root.is_dir() else []
    rows = []
    for run in found:
        spec = runs_mod.read_json(run.spec) or {}
        record = runs_mod.read_json(run.submission) or {}
        rows.append(
            {
                "run": run.run_id,
                "study": run.study,
                "strategy": spec.get("strategy"),
                "nodes": spec.get("nodes"),
                "gpus": spec.get("gpus"),
                "job_id": record.get("job_id"),
                "executor": record.get("executor"),
                "state": sub.state(run) if record else "NOT SUBMITTED",
                "reason": None,
                "category": None,
                "evidence": None,
                "folder": str(run.path),
            }
        )
        if rows[-1]["state"] not in ("COMPLETED", "RUNNING", "PENDING", "REQUEUED", "CONFIGURING"):
            rows[-1]["reason"] = triage.reason(run)
            rows[-1]["category"], rows[-1]["evidence"] = triage.classify(run, rows[-1]["state"])
    return rows


@cli.command()
@click.argument("runs", nargs=-1)
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status(runs: tuple[str, ...], runs_dir: str | None, as_json: bool) -> int:
    """Show the state of runs (all runs under --runs-dir when none is given)."""
    rows = _status_rows(runs, _runs_root(runs_dir))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    if not rows:
        click.echo(f"no runs under {_runs_root(runs_dir)}")
        return 0
    header = ("RUN", "STUDY", "STRATEGY", "NODESxGPUS", "JOB", "STATE", "REASON")
    table = [header] + [
        (
            r["run"],
            r["study"],
            str(r["strategy"]),
            f"{r['nodes']}x{r['gpus']}",
            str(r["job_id"]),
            r["state"],
            r["reason"] or "",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


# ---------------------------------------------------------------------------------------------------- logs


@cli.command()
@click.argument("run")
@click.option("--rank", type=int, default=None, help="Show this rank's log instead of the job's.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run ends.")
@click.option("--poll", type=float, default=0.5, show_default=True, help="Seconds between reads when following.")
@runs_dir_option
def logs(run: str, rank: int | None, follow: bool, poll: float, runs_dir: str | None) -> int:
    """Print a run's log (the job's, or one rank's with --rank)."""
    from . import runs as runs_mod
    from . import submit as sub

    r = runs_mod.resolve(run, _runs_root(runs_dir))
    path = r.job_log if rank is None else r.rank_log(rank)
    if not follow:
        if not path.exists():
            what = "job log" if rank is None else f"log for rank {rank}"
            raise UsageError(f"run {r.run_id} has no {what} yet ({path}); state: {sub.state(r)}")
        click.echo(path.read_text(errors="replace"), nl=False)
        return 0
    offset = 0
    unknown_since = None
    while True:
        state = sub.state(r)  # read before the file: the last read after a terminal state gets everything
        if state == "UNKNOWN":
            unknown_since = unknown_since or time.monotonic()
            if time.monotonic() - unknown_since > UNKNOWN_GIVE_UP_S:
                click.echo(
                    f"[hpcdl] run {r.run_id}: state unknown for {UNKNOWN_GIVE_UP_S} s (sacct, squeue and "
                    "scontrol gave nothing); stopped following",
                    err=True,
                )
                return 1
        else:
            unknown_since = None
        if path.exists():
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            if chunk:
                offset += len(chunk)
                click.echo(chunk.decode(errors="replace"), nl=False)
        if state in sub.TERMINAL:
            click.echo(f"[hpcdl] run {r.run_id}: {state}", err=True)
            return 0 if state == "COMPLETED" else 1
        time.sleep(poll)


# ---------------------------------------------------------------------------------------------------- cancel


@cli.command()
@click.argument("run")
@runs_dir_option
def cancel(run: str, runs_dir: str | None) -> int:
    """Cancel a run."""
    from . import runs as runs_mod
    from . import submit as sub

    r = runs_mod.resolve(run, _runs_root(runs_dir))
    before = sub.cancel(r)
    if before in sub.TERMINAL:
        click.echo(f"run {r.run_id} already ended: {before}")
    else:
        click.echo(f"cancelled run {r.run_id} (was {before})")
    return 0


# ---------------------------------------------------------------------------------------------------- collect


@cli.command()
@click.argument("dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Where the CSV, Markdown and PNG files go.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the scaling table as JSON instead of Markdown.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG figures.")
@click.option(
    "--scaling",
    type=click.Choice(["weak", "strong"]),
    default="weak",
    show_default=True,
    help="weak: group points by per-worker batch (Gustafson fit); strong: by global batch (Amdahl fit).",
)
@click.option("--trim", is_flag=True, help="Drop the fastest and slowest of 5 or more repeats (MLPerf HPC).")
@click.option("--include-warmup", is_flag=True, help="Time epoch 1 too (it is left out by default).")
@click.option(
    "--check",
    "refs_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A references file (YAML): pass/fail per point; exit 1 on a regression.",
)
@runs_dir_option
def collect(
    dirs: tuple[Path, ...],
    out: Path,
    as_json: bool,
    no_plots: bool,
    scaling: str,
    trim: bool,
    include_warmup: bool,
    refs_file: Path | None,
    runs_dir: str | None,
) -> int:
    """Gather run folders into a scaling table (CSV, Markdown) and plots; --check compares with references."""
    from .analysis import collect as col

    refs = None
    if refs_file is not None:
        from .analysis import refs as refs_mod

        refs = refs_mod.load_references(refs_file)  # a bad file fails before anything is written
    report = col.collect(list(dirs) or [_runs_root(runs_dir)], include_warmup, trim, scaling)
    written = col.write(report, out, plots=not no_plots)
    checked = None if refs is None else refs_mod.check(report.scaling, refs)
    if as_json:
        data = col.to_json(report)
        if checked is not None:
            data["check"] = col.records(checked)
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(report.markdown)
        click.echo("")
        for path in written:
            click.echo(f"wrote {path}")
    if checked is None:
        return 0
    if not as_json:
        click.echo("")
        click.echo(col.check_markdown(checked))
    failed = int((checked["status"] != "pass").sum())
    click.echo(
        f"check: {len(checked) - failed} of {len(checked)} reference(s) pass"
        + (f", {failed} regression(s) or missing point(s)" if failed else ""),
        err=True,
    )
    return 1 if failed else 0


@cli.command()
@click.argument("study_a", type=click.Path(path_type=Path))
@click.argument("study_b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--scaling", type=click.Choice(["weak", "strong"]), default="weak", show_default=True)
def compare(study_a: Path, study_b: Path, as_json: bool, scaling: str) -> int:
    """Two studies side by side: the points they share, with B's % difference from A."""
    from .analysis import collect as col
    from .analysis import refs as refs_mod

    a = col.collect([study_a], scaling=scaling).scaling
    b = col.collect([study_b], scaling=scaling).scaling
    both = refs_mod.compare(a, b, "A", "B")
    if as_json:
        click.echo(json.dumps(col.records(both), indent=2))
        return 0
    click.echo(f"A = {study_a}\nB = {study_b}\n")
    click.echo(col.compare_markdown(both))
    return 0


@cli.command()
@click.argument("dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("report"),
    show_default=True,
    help="Where report.html, report.md and the figures go.",
)
@click.option("--scaling", type=click.Choice(["weak", "strong"]), default="weak", show_default=True)
@click.option("--trim", is_flag=True, help="Drop the fastest and slowest of 5 or more repeats (MLPerf HPC).")
@runs_dir_option
def report(dirs: tuple[Path, ...], out: Path, scaling: str, trim: bool, runs_dir: str | None) -> int:
    """One self-contained HTML page (and Markdown): tables, figures, failures and the environment."""
    from .analysis import collect as col
    from .analysis import report as report_mod

    rep = col.collect(list(dirs) or [_runs_root(runs_dir)], trim=trim, scaling=scaling)
    for path in report_mod.write_report(rep, out):
        click.echo(f"wrote {path}")
    return 0


# ---------------------------------------------------------------------------------------------------- profiles


@cli.group(invoke_without_command=True)
@click.pass_context
def profiles(ctx: click.Context) -> None:
    """List the cluster profiles, or show one."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(profiles_list)


@profiles.command("list")
def profiles_list() -> int:
    """List profiles (shipped, and yours in $HPCDL_PROFILES or ~/.config/hpcdl/profiles)."""
    from . import profiles as prof

    default = prof.default_name()
    for name, path in prof.available().items():
        mark = "*" if name == default else " "
        click.echo(f"{mark} {name:<16} {path}")
    click.echo(f"(* = used when --profile is not given; user profiles go in {prof.user_dir()})")
    return 0


@profiles.command("show")
@click.argument("name")
def profiles_show(name: str) -> int:
    """Show one profile, resolved and validated."""
    import yaml

    from . import profiles as prof

    click.echo(yaml.safe_dump(prof.load(name).to_dict(), sort_keys=False), nl=False)
    return 0


def main() -> None:
    cli.main(prog_name="hpcdl")


if __name__ == "__main__":
    main()
