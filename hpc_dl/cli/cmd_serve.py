"""serve, tensorboard: look at a trained model and at training as it goes, from a browser."""

from __future__ import annotations

import os
import shlex
import sys

import click

from ..errors import MissingDependency
from .cmd_run import runs_root
from .options import runs_dir_option

host_option = click.option(
    "--host",
    default="localhost",
    show_default=True,
    help="Address to listen on (0.0.0.0: every interface, e.g. on a compute node).",
)


def _run_server(argv: list[str], what: str) -> int:
    """Become the server (exec): Ctrl-C, SIGTERM and scancel reach it directly, and no child outlives us."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        raise MissingDependency(f"{what} is not installed here ({argv[0]}): pip install -r requirements.txt") from None
    return 0  # reached only where a test replaced exec


@click.command()
@click.argument("run")
@click.option("--port", type=int, default=8501, show_default=True, help="Port to listen on (0: any free one).")
@host_option
@click.option("--no-browser", is_flag=True, help="Do not open a browser on this machine.")
@click.option("--device", default="auto", show_default=True, help="auto (a GPU if there is one), cpu, cuda or cuda:N.")
@runs_dir_option
def serve(run: str, port: int, host: str, no_browser: bool, device: str, runs_dir: str | None) -> int:
    """A web page where RUN's checkpoint answers what you give it, as the run's task shows it (a classifier's
    top-5 classes, a detector's boxes, a language model's continuation of a prompt), beside its curves and
    spec."""
    from .. import runs as runs_mod
    from ..serve import launch, predict

    r = runs_mod.resolve(run, runs_root(runs_dir))
    spec = predict.check(r)
    port = launch.check_port(host, port)
    url, ssh = launch.reach(host, port)
    click.echo(f"serving run {r.run_id} ({spec['model']} on {spec['dataset']}, {spec['strategy']})")
    click.echo(f"  checkpoint  {r.last_checkpoint}")
    click.echo(f"  url         {url}")
    click.echo(f"  from your computer: {ssh}   then open http://localhost:{port}")
    click.echo("  stop with Ctrl-C")
    return _run_server(launch.streamlit_argv(r, host, port, not no_browser, device), "streamlit")


@click.command()
@click.argument("runs", nargs=-1)
@click.option("--start", is_flag=True, help="Start TensorBoard instead of printing its command.")
@click.option(
    "--port", type=int, default=6006, show_default=True, help="Port TensorBoard listens on (0: any free one)."
)
@host_option
@runs_dir_option
def tensorboard(runs: tuple[str, ...], start: bool, port: int, host: str, runs_dir: str | None) -> int:
    """The TensorBoard command for RUNS (run folders, ids, or study folders; default: every run)."""
    from ..serve import launch

    runs_found = launch.tensorboard_runs(list(runs), runs_root(runs_dir))
    port = launch.check_port(host, port) if start else port
    argv = launch.tensorboard_argv(runs_found, host, port)
    click.echo(shlex.join(argv))
    if not start:
        return 0
    url, ssh = launch.reach(host, port)
    click.echo(f"  url         {url}")
    click.echo(f"  from your computer: {ssh}   then open http://localhost:{port}")
    return _run_server(argv, "tensorboard")
