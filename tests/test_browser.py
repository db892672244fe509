"""In Debian's chromium (headless, through playwright): the report of a 7-strategy study at 1,280 px, `hpcdl
serve` on a run trained here, and TensorBoard on its logs. Screenshots go to docs/img/ for docs/serve.md (the README's
report.png is of a real study, not of this test's fabricated one).

Every wait is on a page element, with generous timeouts: nothing depends on this machine's speed.
"""

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, VENV_BIN
from tests.test_collect import make_run

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = int(os.environ.get("HPCDL_BROWSER_WAIT_MS", "180000"))
IMG = REPO / "docs" / "img"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: make system-browser installs the Debian packages chromium chromium-driver")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    p = browser.new_page(viewport={"width": 1280, "height": 900})
    p.set_default_timeout(WAIT_MS)
    yield p
    p.close()


# a 7-strategy study as make scaling-study runs it (pipeline needs 2 workers): samples/s at 1 and 2 workers,
# and test accuracy (psgd's averaging costs some, as in seed 002)
SEVEN = {
    "ddp": (100.0, 180.0, 0.85),
    "fsdp": (95.0, 160.0, 0.85),
    "pipeline": (None, 60.0, 0.84),
    "horovod": (100.0, 175.0, 0.85),
    "psgd": (110.0, 200.0, 0.80),
    "dp": (95.0, 120.0, 0.85),
    "hogwild": (80.0, 90.0, 0.78),
}


def seven_strategy_study(root: Path) -> Path:
    """Run folders of every strategy at 1 and 2 workers (timed phases: the breakdown), a ddp repeat whose
    interval is wide (add repeats), and a second model's one point: through the real collect and report."""
    for strategy, (one, two, accuracy) in SEVEN.items():
        for workers, rate in ((1, one), (2, two)):
            if rate is not None:
                phases = (0.5, 1.0 if strategy != "psgd" else 3.0, 0.2) if workers == 2 else (1.0, 2.0, 0.4)
                kwargs = {"strategy": strategy, "accuracy": accuracy, "phases": phases}
                make_run(root, f"{strategy}-{workers}", workers, [rate / 2, rate, rate], **kwargs)
    make_run(root, "ddp-2-again", 2, [75.0, 150.0, 150.0], accuracy=0.85, phases=(0.5, 1.0, 0.2))
    make_run(root, "resnet18-1", 1, [20.0, 40.0, 40.0], model="resnet18")
    return root / "study"


def test_report_of_a_seven_strategy_study_fits_1280_px_summary_first(hpcdl, tmp_path, page):
    study = seven_strategy_study(tmp_path / "runs")
    assert hpcdl("report", str(study), "--out", str(tmp_path / "report")).exit_code == 0
    page.goto((tmp_path / "report" / "report.html").as_uri())
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    width = page.evaluate("window.innerWidth")
    assert width == 1280 and page.evaluate("document.documentElement.scrollWidth") <= width  # nothing clipped
    assert page.eval_on_selector_all("section", "els => els.map(e => e.id)")[:2] == ["summary", "scaling"]
    first = page.locator("section#scaling table").first
    edges = first.locator("th").evaluate_all("els => els.map(e => [e.textContent, e.getBoundingClientRect().right])")
    inside = {name: right <= width for name, right in edges}
    assert list(inside)[:5] == ["strategy", "workers", "samples/s", "speedup", "efficiency"]  # key columns first
    assert inside["speedup"] and inside["efficiency"]
    rows = first.locator("tbody tr").evaluate_all("rs => rs.map(r => Array.from(r.cells, c => c.textContent))")
    assert [row[:4] for row in rows[:4]] == [
        ["ddp", "1", "100.0", "1.000"],
        ["ddp", "2", "165.0", "1.650"],  # the median of 180 and 150
        ["dp", "1", "95.0", "1.000"],
        ["dp", "2", "120.0", "1.263"],
    ]
    aligned = first.locator("td").evaluate_all("els => els.slice(0, 3).map(e => getComputedStyle(e).textAlign)")
    assert aligned == ["left", "right", "right"]
    verdicts = page.locator("section#summary li").all_inner_texts()
    assert verdicts[0] == "fastest: psgd at 2 workers, 200.0 samples/s (1.82x its 1-worker baseline)."
    assert any(v.startswith("add repeats: ddp at 2 workers (95% CI ") for v in verdicts)
    images = page.eval_on_selector_all("img", "els => els.map(i => [i.alt, i.naturalWidth > 0])")
    names = ["compare_throughput", "compare_speedup", "compare_efficiency", "throughput", "speedup", "efficiency"]
    assert images == [[name, True] for name in [*names, "time_per_epoch", "accuracy", "breakdown"]]
    environment = page.eval_on_selector_all("table.env th", "els => els.map(e => e.textContent)")
    assert environment[:2] == ["hpcdl", "python (report)"] and "devices" in environment
    boxes = page.eval_on_selector_all(".table-box", "els => els.map(e => getComputedStyle(e).overflowX)")
    assert set(boxes) == {"auto"}  # a table wider than the page scrolls in its own box


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A real run: ddp, 1 worker, mnist-cnn on 2,048 Fashion-MNIST images, 2 epochs (about a minute here)."""
    root = tmp_path_factory.mktemp("trained") / "runs"
    argv = [str(VENV_BIN / "hpcdl"), "submit", "--profile", "local", "--strategy", "ddp", "--gpus", "1"]
    argv += ["--model", "mnist-cnn", "--dataset", "fashion-mnist", "--train-samples", "2048", "--lr", "0.1"]
    argv += ["--test-samples", "128", "--epochs", "2", "--runs-dir", str(root), "--wait"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCDL_") or k.startswith("HPCDL_DATA")}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    (spec,) = root.rglob("spec.json")
    return spec.parent


def start(argv: list[str], pattern: str) -> tuple[subprocess.Popen, str]:
    """Start a server command; return it and the first URL its output prints for `pattern`."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        found = re.search(pattern, line)
        if found:
            return proc, found.group(1)
    proc.wait()
    raise AssertionError("".join(lines))


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def test_serve_answers_an_uploaded_image_as_the_checkpoint_does(trained_run, tmp_path, page):
    from torchvision.datasets import FashionMNIST

    from hpc_dl.serve import predict
    from hpc_dl.train.tasks.classification import data

    images = FashionMNIST(data.prepare_fashion_mnist(), train=False)
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"sample-{i}.png")
        images[i][0].save(paths[-1])
    expected = [top[0][0] for top in predict.load(trained_run, device="cpu").top5(paths)]
    proc, url = start(
        [str(VENV_BIN / "hpcdl"), "serve", str(trained_run), "--port", "0", "--no-browser", "--device", "cpu"],
        r"^ +URL: (http://\S+)",  # Streamlit's own line, once it listens
    )
    try:
        page.goto(url)
        page.locator("input[type=file]").set_input_files([str(p) for p in paths])
        for i, path in enumerate(paths):
            page.get_by_text(f"prediction for {path.name}:").wait_for()
            assert page.locator(f".st-key-prediction-{i} strong").first.inner_text() == expected[i]
            page.locator(f".st-key-prediction-{i} table").wait_for()
        page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        page.get_by_text("Training curves").wait_for()
        page.locator("canvas, svg.marks").first.wait_for()  # the charts have drawn
        IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMG / "serve.png"), full_page=True)
    finally:
        stop(proc)


def test_tensorboard_shows_the_runs_scalars(trained_run, page):
    from hpc_dl.train.tracking import Tracker

    # what Trainer.train's tracker writes, from the run's own records
    events = [json.loads(line) for line in (trained_run / "events" / "rank-0.jsonl").read_text().splitlines()]
    evals = {e["epoch"]: e for e in events if e["event"] == "eval"}
    tracker = Tracker.open(trained_run, start_epoch=0)
    for e in (e for e in events if e["event"] == "epoch_stop"):
        tracker.epoch(e, evals[e["epoch"]], lr=0.01)
    tracker.close()
    argv = [str(VENV_BIN / "hpcdl"), "tensorboard", str(trained_run), "--start", "--port", "0"]
    proc, url = start(argv, r"TensorBoard \S+ at (http://[^/\s]+)")
    try:
        page.goto(url + "/#timeseries")
        page.get_by_text("/accuracy").first.wait_for()  # the card "test/accuracy" (group and name are two spans)
        page.get_by_text("Alt + Scroll to Zoom").first.wait_for()  # a chart has drawn
        IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMG / "tensorboard.png"))
    finally:
        stop(proc)


def test_serve_draws_a_detection_runs_boxes(tmp_path, page):
    """An untrained detector scores every box about alike, so which boxes survive differs with the thread
    count (test_serve compares them with the model's own output); here the page lists what it draws."""
    from tests.test_serve import make_detection_run, shapes_image

    run = make_detection_run(tmp_path / "runs")
    image = shapes_image(tmp_path)
    proc, url = start(
        [str(VENV_BIN / "hpcdl"), "serve", str(run.path), "--port", "0", "--no-browser", "--device", "cpu"],
        r"^ +URL: (http://\S+)",
    )
    try:
        page.goto(url)
        page.get_by_text("score threshold").wait_for()
        page.locator("input[type=file]").set_input_files([str(image)])
        page.get_by_text(f"in {image.name} with a score of at least 0.50").wait_for()
        page.get_by_role("slider").first.press("Home")  # the slider's minimum: 0.05
        line = page.get_by_text(f"in {image.name} with a score of at least 0.05")
        count = int(re.match(r"(\d+) object", line.inner_text())[1])
        assert count > 0  # an untrained head still scores boxes above 0.05
        page.locator(".st-key-prediction-0 table tbody tr").nth(count - 1).wait_for()
        assert page.locator(".st-key-prediction-0 table tbody tr").count() == count
        page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        page.get_by_text("No epochs logged yet.").wait_for()  # this run has a checkpoint and no events
    finally:
        stop(proc)


def test_serve_continues_a_prompt_with_a_language_runs_model(language_run, page):
    """A gpt-tiny checkpoint (a few steps of synthetic-text, tests/test_serve.py): the page's greedy
    continuation of a prompt is the model's own, as hpc_dl.serve.predict gives it here."""
    from hpc_dl.serve import predict

    run = language_run
    prompt = "hello, abcdefghij"
    expected = predict.load(run, device="cpu").continuation(prompt)
    proc, url = start(
        [str(VENV_BIN / "hpcdl"), "serve", str(run.path), "--port", "0", "--no-browser", "--device", "cpu"],
        r"^ +URL: (http://\S+)",
    )
    try:
        page.goto(url)
        page.get_by_role("textbox", name="Prompt").fill(prompt)
        page.get_by_role("button", name="Continue").click()
        page.get_by_text("the model's next 120 bytes (greedy)").wait_for()
        assert page.locator(".st-key-continuation code").inner_text() == expected
        page.get_by_text("No epochs logged yet.").wait_for()  # this run has a checkpoint and no events
        IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMG / "serve-language.png"), full_page=True)
    finally:
        stop(proc)
