"""The hpcdl command line (console script `hpcdl = hpc_dl.cli:main`); see app.py."""

from .app import cli, main

__all__ = ["cli", "main"]
