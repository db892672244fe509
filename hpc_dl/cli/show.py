"""What the commands print: submissions, dry runs, sweeps, the status table. Text only; no decisions."""

from __future__ import annotations

from pathlib import Path

import click


def dry_run(run_id: str, run_path: Path, profile_name: str, rendered) -> None:
    click.echo(rendered.script, nl=False)
    click.echo("\n# ---- submission (dry run: nothing was submitted)")
    for line in [
        f"run: {run_id}",
        f"folder: {run_path}",
        f"profile: {profile_name}",
        *rendered.describe().splitlines(),
    ]:
        click.echo(f"# {line}")


def submitted(s, root: Path) -> None:
    click.echo(f"submitted run {s.run.run_id} (job {s.job_id}, {s.executor} executor)")
    click.echo(f"  folder  {s.run.path}")
    click.echo(f"  log     {s.run.job_log}")
    click.echo(f"  ranks   {s.run.logs}/rank-<R>.log")
    click.echo(f"  follow  hpcdl logs {s.run.run_id} --runs-dir {root} --follow")


def waited(run_id: str, state: str, terminal: bool, limit: float) -> None:
    if terminal:
        click.echo(f"run {run_id}: {state}")
    else:
        click.echo(f"run {run_id}: still {state} after waiting {limit:g} s (its time limit + 5 min); not waiting on")


def array_dry_run(kind: str, labels: list[str], sbatch: dict, profile_name: str, throttle: int, out) -> None:
    click.echo(
        f"# {kind}: {len(labels)} point(s) as one job array, at most {throttle} at once (dry run: nothing "
        "was submitted)"
    )
    click.echo(f"# every task's allocation ({profile_name}):")
    for key, value in sbatch.items():
        click.echo(f"#   {key}: {value}")
    for i, label in enumerate(labels):
        click.echo(f"# [{i}] {label}")
    click.echo(f"# then: collect into {out}" if out else "# then: no collect job")


def array_submitted(kind: str, s, throttle: int, out, root: Path) -> None:
    click.echo(
        f"submitted {kind} of {len(s.runs)} run(s) as job {s.job_id} ({s.executor} executor, at most "
        f"{throttle} at once)"
    )
    if len(s.arrays) > 1:
        click.echo(f"  arrays   {', '.join(s.arrays)} (the cluster's MaxArraySize is smaller: one after the other)")
    if s.collect_job_id and s.executor == "local":
        click.echo(f"  collect  in the same local job, after the runs -> {out}")
    elif s.collect_job_id:
        click.echo(f"  collect  job {s.collect_job_id} after it (afterany) -> {out}")
    click.echo(f"  runs     {s.runs[0].path.parent}")
    click.echo(f"  record   {s.record}")
    click.echo(f"  watch    hpcdl status --runs-dir {root}")


def array_waited(kind: str, s, done: int, final: str, out) -> None:
    click.echo(f"{kind} {s.job_id}: {done} of {len(s.runs)} run(s) completed" + (f"; collect {final}" if out else ""))
    if out and (Path(out) / "scaling.md").exists():
        click.echo(f"  table    {Path(out) / 'scaling.md'}")
        click.echo(f"  plots    {Path(out) / 'throughput.png'}, {Path(out) / 'speedup.png'}")


def _state_text(row: dict) -> str:
    """TERMINATED (SIGTERM): a run ended by a signal says which."""
    signals = row.get("signals") if row["state"] == "TERMINATED" else None
    return f"{row['state']} ({', '.join(signals)})" if signals else str(row["state"])


def status_table(rows: list[dict]) -> None:
    header = ("RUN", "STUDY", "STRATEGY", "NODESxGPUS", "JOB", "STATE", "REASON")
    table = [header] + [
        (
            r["run"],
            r["study"],
            str(r["strategy"]),
            f"{r['nodes']}x{r['gpus']}",
            str(r["job_id"]),
            _state_text(r),
            r["reason"] or "",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def warnings(lines: list[str]) -> None:
    for line in lines:
        click.echo(f"warning: {line}", err=True)


def doctor_table(rows: list[dict]) -> None:
    table = [("CHECK", "STATUS", "DETAIL", "FIX")] + [
        (r["check"], "ok" if r["ok"] else "FAIL", r["detail"], r["fix"]) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        click.echo("  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)), row[3]]).rstrip())
