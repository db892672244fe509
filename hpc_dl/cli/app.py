"""The hpcdl command group: one-line errors and exit codes, and the one place commands are registered.

Heavy modules (torch, pandas, submitit) are imported inside the commands that need them, so
`hpcdl --help` on a login node is instant.
"""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from ..errors import HpcdlError
from . import cmd_plan, cmd_profiles, cmd_results, cmd_run, cmd_serve, cmd_watch


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


COMMANDS = [
    cmd_run.submit,
    cmd_run.sweep,
    cmd_run.kfold,
    cmd_run.study,
    cmd_run.rerun,
    cmd_watch.status,
    cmd_watch.logs,
    cmd_watch.cancel,
    cmd_results.collect,
    cmd_results.compare,
    cmd_results.report,
    cmd_profiles.profiles,
    cmd_serve.serve,
    cmd_serve.tensorboard,
    cmd_profiles.doctor,
    cmd_plan.probe,
    cmd_plan.plan,
]
for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    cli.main(prog_name="hpcdl")
