"""status, logs, cancel: watch and control submitted runs."""

from __future__ import annotations

import json

import click

from ..errors import UsageError
from . import show
from .cmd_run import runs_root
from .options import json_option, runs_dir_option


@click.command()
@click.argument("runs", nargs=-1)
@runs_dir_option
@json_option
def status(runs: tuple[str, ...], runs_dir: str | None, as_json: bool) -> int:
    """Show the state of runs (all runs under --runs-dir when none is given)."""
    from .. import control

    rows = control.status_rows(runs, runs_root(runs_dir))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"no runs under {runs_root(runs_dir)}")
    else:
        show.status_table(rows)
    return 0


@click.command()
@click.argument("run")
@click.option("--rank", type=int, default=None, help="Show this rank's log instead of the job's.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run ends.")
@click.option("--poll", type=float, default=0.5, show_default=True, help="Seconds between reads when following.")
@runs_dir_option
def logs(run: str, rank: int | None, follow: bool, poll: float, runs_dir: str | None) -> int:
    """Print a run's log (the job's, or one rank's with --rank)."""
    from .. import control
    from .. import runs as runs_mod

    r = runs_mod.resolve(run, runs_root(runs_dir))
    path = r.job_log if rank is None else r.rank_log(rank)
    if not follow:
        if not path.exists():
            what = "job log" if rank is None else f"log for rank {rank}"
            raise UsageError(f"run {r.run_id} has no {what} yet ({path}); state: {control.state(r)}")
        click.echo(path.read_text(errors="replace"), nl=False)
        return 0
    for item in control.follow(r, path, poll):
        if isinstance(item, str):
            click.echo(item, nl=False)
        elif item[0] == "unknown":
            click.echo(
                f"[hpcdl] run {r.run_id}: state unknown for {control.UNKNOWN_GIVE_UP_S} s (sacct, squeue and "
                "scontrol gave nothing); stopped following",
                err=True,
            )
            return 1
        else:
            click.echo(f"[hpcdl] run {r.run_id}: {control.describe(r, item[1])}", err=True)
            return 0 if item[1] == "COMPLETED" else 1
    return 1


@click.command()
@click.argument("run", metavar="RUN_OR_STUDY")
@runs_dir_option
def cancel(run: str, runs_dir: str | None) -> int:
    """Cancel a run, or every run of a study (all the arrays of its sweeps, and their collect jobs)."""
    from .. import control
    from .. import runs as runs_mod

    study = runs_mod.StudyDir.find(run, runs_root(runs_dir))
    if study is not None:
        cancelled, jobs = control.cancel_study(study)
        also = f" and collect job(s) {', '.join(jobs)}" if jobs else ""
        click.echo(f"study {study.name}: cancelled {len(cancelled)} run(s){also}")
        for r, before in cancelled:
            click.echo(f"  {r.run_id} (was {before})")
        return 0
    r = runs_mod.resolve(run, runs_root(runs_dir))
    before = control.cancel(r)
    if control.is_terminal(before):
        click.echo(f"run {r.run_id} already ended: {before}")
    else:
        click.echo(f"cancelled run {r.run_id} (was {before})")
    return 0
