"""The command lines `hpcdl serve` and `hpcdl tensorboard` start, and how to reach them from a laptop.

Pure but for reading the environment: tests compare the argv lists and the printed lines exactly.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import sys
from pathlib import Path

from ..errors import UsageError
from ..runs import RunDir, find_runs, resolve

PAGE = Path(__file__).with_name("page.py")
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def check_port(host: str, port: int) -> int:
    """The port to serve on: `port` if it is free on `host`, any free one for 0; UsageError if taken."""
    bind = "" if host in ("0.0.0.0", "::") else host
    with socket.socket() as s:
        try:
            s.bind((bind, port))
        except OSError:
            raise UsageError(
                f"invalid port: {port} (in use on {host}; pick another with --port, or --port 0)"
            ) from None
        return s.getsockname()[1]


def reach(host: str, port: int) -> tuple[str, str]:
    """(URL on this host, the ssh port-forward a user runs on their own computer to open it as localhost)."""
    target = "localhost" if host in LOOPBACK else socket.gethostname()
    login = os.environ.get("HPCDL_LOGIN_HOST") or os.environ.get("SLURM_SUBMIT_HOST") or socket.gethostname()
    user = os.environ.get("USER") or getpass.getuser()
    return f"http://{target}:{port}", f"ssh -N -L {port}:{target}:{port} {user}@{login}"


def streamlit_argv(run: RunDir, host: str, port: int, browser: bool, device: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(PAGE),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "false" if browser else "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "viewer",
        "--",
        str(run.path),
        "--device",
        device,
    ]


def tensorboard_runs(refs: list[str], root: Path) -> list[RunDir]:
    """Runs named by folder, id or prefix, and every run under a study folder; all runs under root if none."""
    found: dict[Path, RunDir] = {}
    for ref in refs or [str(root)]:
        path = Path(ref)
        many = path.is_dir() and not RunDir(path).spec.is_file()  # a study folder, or the runs root
        for run in find_runs([path]) if many else [resolve(ref, root)]:
            found[run.path] = run
    return [found[p] for p in sorted(found)]


def tensorboard_argv(runs: list[RunDir], host: str, port: int) -> list[str]:
    """`tensorboard --logdir_spec ID:PATH,...` for the runs that have TensorBoard logs; UsageError if none has."""
    logged = [r for r in runs if r.tensorboard.is_dir()]
    if not logged:
        raise UsageError(
            f"no TensorBoard logs in {len(runs)} run(s): a run writes them to <run>/tensorboard/ as it trains"
        )
    for run in logged:
        if any(c in str(run.tensorboard) for c in ",:"):
            raise UsageError(f"invalid path: {run.tensorboard} (TensorBoard's --logdir_spec cannot take ',' or ':')")
    spec = ",".join(f"{r.run_id}:{r.tensorboard}" for r in logged)
    return [tensorboard_program(), "--logdir_spec", spec, "--host", host, "--port", str(port)]


def tensorboard_program() -> str:
    """`tensorboard` when PATH finds this environment's, else its full path."""
    mine = Path(sys.executable).with_name("tensorboard")  # the program beside this python
    found = shutil.which("tensorboard")
    if found and (not mine.exists() or Path(found).resolve() == mine.resolve()):
        return "tensorboard"
    return str(mine) if mine.exists() else "tensorboard"
