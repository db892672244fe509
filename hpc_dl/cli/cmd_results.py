"""collect, compare, report: run folders -> tables, figures, checks against references."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cmd_run import runs_root
from .options import json_option, out_option, runs_dir_option, scaling_option, trim_option

dirs_argument = click.argument("dirs", nargs=-1, type=click.Path(path_type=Path))


@click.command()
@dirs_argument
@out_option(Path("results"), "Where the CSV, Markdown and PNG files go.")
@click.option("--json", "as_json", is_flag=True, help="Print the scaling table as JSON instead of Markdown.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG figures.")
@scaling_option
@trim_option
@click.option("--include-warmup", is_flag=True, help="Time epoch 1 too (it is left out by default).")
@click.option(
    "--check",
    "refs_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A references file (YAML): pass/fail per point; exit 1 on a regression.",
)
@runs_dir_option
def collect(dirs, out, as_json, no_plots, scaling, trim, include_warmup, refs_file, runs_dir) -> int:
    """Gather run folders into a scaling table (CSV, Markdown) and plots; --check compares with references."""
    from ..analysis import collect as col
    from ..analysis import refs as refs_mod

    refs = None if refs_file is None else refs_mod.load_references(refs_file)  # fails before anything is written
    report = col.collect(list(dirs) or [runs_root(runs_dir)], include_warmup, trim, scaling)
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
        click.echo(refs_mod.check_markdown(checked))
    failed = int((checked["status"] != "pass").sum())
    click.echo(
        f"check: {len(checked) - failed} of {len(checked)} reference(s) pass"
        + (f", {failed} regression(s) or missing point(s)" if failed else ""),
        err=True,
    )
    return 1 if failed else 0


@click.command()
@click.argument("study_a", type=click.Path(path_type=Path))
@click.argument("study_b", type=click.Path(path_type=Path))
@json_option
@scaling_option
def compare(study_a: Path, study_b: Path, as_json: bool, scaling: str) -> int:
    """Two studies side by side: the points they share, with B's % difference from A."""
    from ..analysis import collect as col
    from ..analysis import refs as refs_mod

    a = col.collect([study_a], scaling=scaling).scaling
    b = col.collect([study_b], scaling=scaling).scaling
    both = refs_mod.compare(a, b, "A", "B")
    if as_json:
        click.echo(json.dumps(col.records(both), indent=2))
        return 0
    click.echo(f"A = {study_a}\nB = {study_b}\n")
    click.echo(refs_mod.compare_markdown(both))
    return 0


@click.command()
@dirs_argument
@out_option(Path("report"), "Where report.html, report.md and the figures go.")
@scaling_option
@trim_option
@runs_dir_option
def report(dirs, out: Path, scaling: str, trim: bool, runs_dir: str | None) -> int:
    """One self-contained HTML page (and Markdown): tables, figures, failures and the environment."""
    from ..analysis import collect as col
    from ..analysis import report as report_mod

    rep = col.collect(list(dirs) or [runs_root(runs_dir)], trim=trim, scaling=scaling)
    for path in report_mod.write_report(rep, out):
        click.echo(f"wrote {path}")
    return 0
