import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hpc_dl.cli import cli

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def _unit(item) -> str | None:
    """The unit of work an item belongs to: "slurm", its module where it shares a module or session fixture
    with other tests (made once per unit), else None (a unit of its own)."""
    if "slurm_cluster" in item.fixturenames:
        return "slurm"
    defs = item._fixtureinfo.name2fixturedefs.values()
    if any(d[-1].scope in ("module", "session") and d[-1].argname != "tmp_path_factory" for d in defs):
        return item.nodeid.split("::")[0]
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which turns the marker into the unit
def pytest_collection_modifyitems(config, items):
    """Units of work for pytest-xdist (make test: two workers, `--dist loadgroup --no-loadscope-reorder`): the
    tests on the test SLURM are one unit, first: they share its two nodes and run in turn, and while their
    jobs wait on the scheduler the other worker trains. Then the real trainings (`slow`), then the rest, so
    that no long test starts last; a module whose tests share a fixture is one unit. Without xdist only
    the order changes."""
    units = {item.nodeid: _unit(item) or item.nodeid for item in items}
    rank: dict[str, tuple[bool, bool]] = {}  # a unit's tests stay together, where its first would go
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        unit = units[item.nodeid]
        here = (unit != "slurm", item.get_closest_marker("slow") is None)
        rank[unit] = min(rank.get(unit, here), here)
        first.setdefault(unit, i)
        if unit != item.nodeid:
            item.add_marker(pytest.mark.xdist_group(unit))
    items.sort(key=lambda item: (rank[u := units[item.nodeid]], first[u]))


def pytest_terminal_summary(terminalreporter):
    """What a test recorded to be read (`record_property("shown", text)`: the planner's leave-one-out
    figures), after the run; the reports carry it from pytest-xdist's workers too."""
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        for key, text in getattr(report, "user_properties", []):
            if key == "shown" and report.when == "call":
                terminalreporter.write_sep("-", report.nodeid.split("@")[0])
                terminalreporter.write_line(text.strip())


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No user profiles, no HPCDL_* settings from the caller; runs go under tmp_path/runs."""
    for key in list(os.environ):
        if key.startswith("HPCDL_") and key not in ("HPCDL_DATA_CACHE", "HPCDL_FASHION_MNIST_DIR"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HPCDL_PROFILES", str(tmp_path / "user-profiles"))
    monkeypatch.setenv("HPCDL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HPCDL_POLL_MAX", "5")  # waits back off to 5 s at most, not a minute
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


CLUSTER_SCRIPT = REPO / "tests" / "cluster" / "slurm.sh"
CLUSTER_PROFILES = REPO / "tests" / "cluster" / "profiles"


@pytest.fixture(scope="session")
def slurm_cluster():
    """The real SLURM of tests/cluster/slurm.sh, brought up once (a running one is reused).

    Needs root (daemons, apt); elsewhere the SLURM tests are skipped, except under CI, where they must run.
    """
    import subprocess

    dirname = os.environ.get("HPCDL_CLUSTER_DIR", "/var/tmp/hpcdl-slurm")
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("the test SLURM cluster needs root (tests/cluster/slurm.sh)")
    out = subprocess.run([str(CLUSTER_SCRIPT), "up"], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        message = f"could not start the test SLURM cluster: {out.stderr.strip()[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return {"SLURM_CONF": f"{dirname}/etc/slurm.conf"}


def jobs_submitted_under(folder: Path) -> list[str]:
    """The SLURM jobs whose records lie under a folder: every run's job, every sweep's arrays and collect job."""
    import json

    ids: list[str] = []
    for path in sorted(folder.rglob("submission.json")) + sorted(folder.rglob("sweep-*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("executor") == "slurm":
            ids += [record.get("job_id"), record.get("collect_job_id"), *record.get("arrays", [])]
    return list(dict.fromkeys(i for i in ids if i))


@pytest.fixture
def on_cluster(slurm_cluster, monkeypatch, tmp_path):
    """Run hpcdl against the test cluster, with its profile (testcluster)."""
    for key, value in slurm_cluster.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HPCDL_PROFILES", str(CLUSTER_PROFILES))
    yield slurm_cluster
    # whatever the test left queued or running must not hold the nodes for the next one; only its own jobs
    # (those recorded under its tmp_path): other sessions may share the cluster
    import subprocess

    ids = jobs_submitted_under(tmp_path)
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30, env={**os.environ, **slurm_cluster})


@pytest.fixture(scope="session")
def language_run(tmp_path_factory):
    """A gpt-tiny run whose checkpoint learned synthetic-text for a few steps (tests/test_serve.py), made once
    for the serve tests with and without a browser."""
    from tests.test_serve import make_language_run

    return make_language_run(tmp_path_factory.mktemp("language") / "runs")
