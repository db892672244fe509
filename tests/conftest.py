import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hpc_dl.cli import cli

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No user profiles, no HPCDL_* settings from the caller; runs go under tmp_path/runs."""
    for key in list(os.environ):
        if key.startswith("HPCDL_") and key not in ("HPCDL_DATA_CACHE", "HPCDL_FASHION_MNIST_DIR"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HPCDL_PROFILES", str(tmp_path / "user-profiles"))
    monkeypatch.setenv("HPCDL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def runs_root(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def hpcdl():
    """Run the CLI in-process: hpcdl("submit", "--dry-run") -> click Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def run_folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("spec.json")) if root.exists() else []
