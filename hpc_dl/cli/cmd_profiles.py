"""profiles: list the cluster profiles, or show one resolved and validated."""

from __future__ import annotations

import click

from . import show
from .cmd_run import runs_root
from .options import runs_dir_option


@click.group(invoke_without_command=True)
@click.pass_context
def profiles(ctx: click.Context) -> None:
    """List the cluster profiles, or show one."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(profiles_list)


@profiles.command("list")
def profiles_list() -> int:
    """List profiles (shipped, and yours in $HPCDL_PROFILES or ~/.config/hpcdl/profiles)."""
    from .. import profiles as prof

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

    from .. import profiles as prof

    click.echo(yaml.safe_dump(prof.load(name).to_dict(), sort_keys=False), nl=False)
    return 0


@click.command()
@click.option("--profile", default=None, help="The profile to check (default as for submit).")
@click.option("--partition", default=None, help="The partition to run the check on (default: the profile's).")
@click.option("--here", is_flag=True, help="Run the checks on this machine now, not as a job.")
@click.option("--timeout", type=float, default=900, show_default=True, help="Seconds to wait for the job.")
@runs_dir_option
def doctor(profile: str | None, partition: str | None, here: bool, timeout: float, runs_dir: str | None) -> int:
    """Check a profile: its set-up lines, python, torch, CUDA/NCCL, MPI and Horovod, as a short job."""
    from .. import doctor as doc
    from .. import profiles as prof

    p = prof.load(profile)
    root = runs_root(runs_dir)
    if here:
        run, rows = doc.run_here(p, partition, root)
    else:
        click.echo(f"submitting a {doc.doctor_spec(p, partition).time_limit}-minute check job on profile {p.name} ...")
        run, rows = doc.submit_and_wait(p, partition, root, timeout)
    show.doctor_table(rows)
    click.echo(f"(log: {run.job_log})")
    return 0 if all(r["ok"] for r in rows) else 1
