"""References (ReFrame-style target/lower/upper/unit), collect --check and compare, on hand-made runs."""

import json
import os
import stat

import pytest
from hpc_dl.analysis import collect as col
from hpc_dl.analysis import refs

from hpc_dl.errors import UsageError
from tests.test_collect import make_run, make_script_run

REFS = """\
references:
  - {strategy: ddp, model: mnist-cnn, workers: 1, metric: throughput, target: 100, lower: -0.05, unit: samples/s}
  - {strategy: ddp, model: mnist-cnn, workers: 2, metric: throughput, target: 200, lower: -0.05, upper: 0.5}
  - {strategy: ddp, model: mnist-cnn, workers: 2, metric: efficiency, target: 0.9, lower: -0.01, upper: 0.01}
  - {strategy: ddp, model: mnist-cnn, workers: 8, metric: throughput, target: 500, lower: -0.1}
"""


@pytest.fixture
def study(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "a1", 1, [100.0])
    make_run(root, "a2", 2, [180.0])
    return root / "study"


def test_check_pass_fail_missing(study, tmp_path):
    path = tmp_path / "refs.yaml"
    path.write_text(REFS)
    checked = refs.check(col.collect([study]).scaling, refs.load_references(path))
    assert list(checked["status"]) == ["pass", "FAIL", "pass", "missing"]
    assert list(checked["deviation"][:3]) == pytest.approx([0.0, -0.1, 0.0])


def test_collect_check_exits_nonzero_on_a_regression(study, tmp_path, hpcdl):
    path = tmp_path / "refs.yaml"
    path.write_text(REFS)
    result = hpcdl("collect", str(study), "--out", str(tmp_path / "out"), "--no-plots", "--check", str(path))
    assert result.exit_code == 1
    assert result.stderr == "check: 2 of 4 reference(s) pass, 2 regression(s) or missing point(s)\n"
    table = result.stdout.split("## Check against references\n\n")[1].splitlines()
    assert [c.strip() for c in table[2].split("|")[1:10]] == [
        "ddp",
        "mnist-cnn",
        "1",
        "throughput",
        "100 samples/s",
        "-5% / -",
        "100 samples/s",
        "+0.0%",
        "pass",
    ]
    assert [c.strip() for c in table[3].split("|")[1:10]] == [
        "ddp",
        "mnist-cnn",
        "2",
        "throughput",
        "200",
        "-5% / +50%",
        "180",
        "-10.0%",
        "FAIL",
    ]
    path.write_text(REFS.splitlines()[0] + "\n" + REFS.splitlines()[1] + "\n")
    ok = hpcdl("collect", str(study), "--out", str(tmp_path / "out"), "--no-plots", "--check", str(path), "--json")
    assert ok.exit_code == 0 and ok.stderr == "check: 1 of 1 reference(s) pass\n"
    assert json.loads(ok.stdout)["check"][0]["status"] == "pass"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "references:\n  - {strategy: ddp, model: m, workers: 1, metric: throughput, target: 1, lower: -0.1, "
            "colour: red}\n",
            "reference 1: unknown key 'colour' (known: batch_size, dataset, lower, metric, model, "
            "nodes, precision, strategy, target, unit, upper, variant, workers)",
        ),
        (
            "references:\n  - {strategy: ddp, model: m, workers: 1, metric: throughput, target: 1, lower: 0.1}\n",
            "reference 1: lower tolerance 0.1 is invalid (must be a fraction between -1 and 0, e.g. -0.1, or null)",
        ),
        (
            "references:\n  - {strategy: ddp, model: m, workers: 1, metric: throughput, target: 1, upper: -2}\n",
            "reference 1: upper tolerance -2 is invalid (must be a fraction >= 0, e.g. 0.1, or null)",
        ),
        (
            "references:\n  - {strategy: ddp, model: m, workers: 1, metric: throughput, target: 1}\n",
            "reference 1: give a lower or an upper tolerance (or both)",
        ),
        (
            "references:\n  - {strategy: ddp, model: m, metric: throughput, target: 1, lower: -0.1}\n",
            "reference 1: 'workers' is required",
        ),
        (
            "references:\n  - {strategy: ddp, model: m, workers: 1, metric: speed, target: 1, lower: -0.1}\n",
            "reference 1: metric 'speed' is invalid (choose from throughput, time_per_epoch_s, speedup, efficiency, "
            "test_accuracy)",
        ),
        (
            "references:\n  - {strategy: ddp, model: m, workers: 1, metric: throughput, target: fast, lower: -0.1}\n",
            "reference 1: target 'fast' is invalid (must be a number > 0)",
        ),
        ("something: else\n", "expected a mapping with a non-empty list 'references'"),
    ],
    ids=["unknown-key", "bad-lower", "bad-upper", "no-tolerance", "missing-key", "bad-metric", "bad-target", "shape"],
)
def test_bad_references_are_one_line(tmp_path, hpcdl, study, text, message):
    path = tmp_path / "refs.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        refs.load_references(path)
    assert str(info.value) == f"{path}: {message}"
    result = hpcdl("collect", str(study), "--out", str(tmp_path / "out"), "--check", str(path))
    assert (result.exit_code, result.stderr) == (2, f"Error: {path}: {message}\n")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_malformed_references_name_the_line(tmp_path):
    path = tmp_path / "refs.yaml"
    path.write_text("references:\n  - [a, b\n")
    with pytest.raises(UsageError) as info:
        refs.load_references(path)
    assert str(info.value).startswith(f"{path}:3: malformed YAML: ")


def test_compare_two_studies(tmp_path, hpcdl):
    make_run(tmp_path / "a", "x1", 1, [100.0])
    make_run(tmp_path / "a", "x2", 2, [180.0])
    make_run(tmp_path / "b", "y1", 1, [110.0])
    make_run(tmp_path / "b", "y2", 2, [171.0])
    result = hpcdl("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"A = {tmp_path / 'a'}", f"B = {tmp_path / 'b'}"]
    assert [line.split("|")[9].strip() for line in lines[5:7]] == ["+10.0%", "-5.0%"]
    data = json.loads(hpcdl("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json").stdout)
    assert [round(r["throughput diff %"], 6) for r in data] == [10.0, -5.0]


def test_compare_shows_a_silent_script_point_with_its_wall_time_only(tmp_path, hpcdl):
    for study, thr, wall in [("a", 100.0, 8.0), ("b", 110.0, 6.0)]:
        make_run(tmp_path / study, f"{study}1", 1, [thr])
        make_script_run(tmp_path / study, f"{study}s", 2, wall)
    result = hpcdl("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in result.stdout.splitlines()[5:]]
    assert rows == [
        ["ddp", "-", "mnist-cnn", "64", "1", "1", "100.0", "110.0", "+10.0%", "10.000", "9.091", "-9.1%"],
        ["ddp", "-", "train.py", "-", "2", "1", "-", "-", "-", "8.000", "6.000", "-25.0%"],
    ]


def test_compare_with_nothing_in_common(tmp_path, hpcdl):
    make_run(tmp_path / "a", "x1", 1, [100.0])
    make_run(tmp_path / "b", "y4", 4, [100.0])
    result = hpcdl("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: A and B have no point in common (same strategy, variant, model, data set, batch, precision, "
        "workers and nodes)\n",
    )


def test_report_writes_one_self_contained_page_and_markdown(tmp_path, hpcdl):
    root = tmp_path / "runs"
    make_run(root, "p1", 1, [100.0], phases=(1.0, 2.0, 0.5))
    make_run(root, "p2", 2, [180.0], phases=(0.5, 1.6, 0.25))
    make_run(root, "p3", 2, [10.0], state="FAILED", failure="RuntimeError: boom")
    out = tmp_path / "rep"
    result = hpcdl("report", str(root), "--out", str(out))
    assert result.exit_code == 0, result.output
    names = [line.split("/")[-1] for line in result.stdout.splitlines()]
    assert names == [
        "report.html",
        "report.md",
        "report-compare_throughput.png",
        "report-compare_speedup.png",
        "report-compare_efficiency.png",
        "report-throughput.png",
        "report-speedup.png",
        "report-efficiency.png",
        "report-time_per_epoch.png",
        "report-accuracy.png",
        "report-breakdown.png",
    ]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 9 and "src='report-" not in page  # self-contained
    assert "Runs that did not complete" in page and "rank 1: RuntimeError: boom" in page
    fastest = "fastest: ddp at 2 workers, 180.0 samples/s (1.80x its 1-worker baseline)."
    assert page.index('<section id="summary">') < page.index("<table") and f"<li>{fastest}</li>" in page
    md = (out / "report.md").read_text()
    assert "## Where the time goes" in md and "## Environment" in md and "- hpcdl: 0.1.0" in md
    assert md.index("## Summary") < md.index("| strategy") and f"- {fastest}\n" in md  # the same summary


def test_report_and_collect_files_are_readable_by_everyone(tmp_path, hpcdl):
    """Written through a temporary file and a rename, but with the mode open() gives (0644 under umask 022),
    not mkstemp's 0600: a report is for others to read (a web server, the group)."""
    root = tmp_path / "runs"
    make_run(root, "p1", 1, [100.0])
    assert hpcdl("collect", str(root), "--out", str(tmp_path / "res")).exit_code == 0
    assert hpcdl("report", str(root), "--out", str(tmp_path / "rep")).exit_code == 0
    (tmp_path / "plain").write_text("")  # what open() makes here
    modes = {
        p: stat.S_IMODE(p.stat().st_mode) for p in [tmp_path / "res" / "scaling.csv", tmp_path / "rep" / "report.html"]
    }
    assert modes == dict.fromkeys(modes, stat.S_IMODE((tmp_path / "plain").stat().st_mode))
    umask = os.umask(0o022)
    os.umask(umask)
    if umask == 0o022:
        assert set(modes.values()) == {0o644}


def test_report_on_an_empty_folder(tmp_path, hpcdl):
    (tmp_path / "empty").mkdir()
    result = hpcdl("report", str(tmp_path / "empty"), "--out", str(tmp_path / "rep"))
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: no runs under {tmp_path / 'empty'} (a run folder holds spec.json)\n",
    )
    assert not (tmp_path / "rep").exists()
