"""Failures before a rank's log opens are triaged with their real error line (issues 10 and 12)."""

import json
from pathlib import Path

import pytest

from hpc_dl import profiles
from tests.test_real_runs import SMALL, submitted_run

pytestmark = pytest.mark.slow
SHIPPED = Path(profiles.SHIPPED_DIR)


def status_row(hpcdl, run):
    return json.loads(hpcdl("status", run.run_id, "--json").stdout)[0]


def test_an_import_error_in_the_entrypoint_is_quoted_not_torchruns_stub(hpcdl, runs_root, tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    text = (Path(__import__("hpc_dl.sbatch_templates").sbatch_templates.__file__).parent / "torchrun.sh.j2").read_text()
    (templates / "torchrun.sh.j2").write_text(
        text.replace("{{ command[0] }}{% for arg in command[1:] %} {{ arg }}{% endfor %}", "-m nosuch_module_xyz")
    )
    result = hpcdl("submit", *SMALL, "--gpus", "2", "--templates", str(templates), "--wait")
    assert result.exit_code == 1
    row = status_row(hpcdl, submitted_run(result, runs_root))
    assert row["state"] == "FAILED" and row["category"] == "software environment"
    assert row["reason"].startswith("rank ") and row["reason"].endswith("No module named nosuch_module_xyz")


def test_a_failing_setup_line_is_quoted_with_its_line_number(hpcdl, runs_root, tmp_path, monkeypatch):
    folder = tmp_path / "user-profiles"
    folder.mkdir(exist_ok=True)
    text = (SHIPPED / "local.yaml").read_text().replace("name: local", "name: mods")
    (folder / "mods.yaml").write_text(text + "modules: [cuda/12.1]\n")
    result = hpcdl("submit", *[a if a != "local" else "mods" for a in SMALL], "--wait")
    assert result.exit_code == 1
    run = submitted_run(result, runs_root)
    line = next(n for n, x in enumerate(run.script.read_text().splitlines(), 1) if x == "module load cuda/12.1")
    row = status_row(hpcdl, run)
    assert (row["reason"], row["category"]) == (
        f"job.sh line {line}: module: command not found",
        "software environment",
    )
