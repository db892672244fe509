"""Time answering a 4-image upload with resnet18 on CPU (aim: under 1 s), through hpc_dl.serve.predict and,
with --page, through the Streamlit page in headless chromium (upload -> the 4th answer shown).

.venv/bin/python bench/bench_serve.py [--repeats 20] [--page]

The weights are a fresh resnet18's in a checkpoint shaped as Trainer.save_checkpoint writes it: the time
does not depend on what the weights learned. The images are the first 4 of Fashion-MNIST's test set.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from hpc_dl.runs import RunDir
from hpc_dl.serve import predict
from hpc_dl.spec import JobSpec
from hpc_dl.train import models
from hpc_dl.train.tasks.classification import data

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CHROMIUM_ARGS += ["--disable-component-update", "--disable-sync", "--no-first-run"]


def make_run(root: Path) -> tuple[RunDir, list[Path]]:
    from torchvision.datasets import FashionMNIST

    run = RunDir.create(root, "bench", "serve-resnet18")
    run.spec.write_text(json.dumps(JobSpec(model="resnet18", dataset="fashion-mnist").to_dict()))
    state = {"model": models.build("resnet18", 10).state_dict(), "optimizer": {}}
    torch.save({"format": 1, "epoch": 1, "state": state, "history": [], "evals": []}, run.checkpoints / "last.pt")
    images = FashionMNIST(data.prepare_fashion_mnist(), train=False)
    paths = []
    for i in range(4):
        paths.append(root / f"sample-{i}.png")
        images[i][0].save(paths[-1])
    return run, paths


def bench_module(run: RunDir, paths: list[Path], repeats: int) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    p = predict.load(run, device="cpu")
    load_s = time.perf_counter() - t0
    uploads = [path.read_bytes() for path in paths]  # what the page gets: the uploaded files' bytes
    p.top5(uploads)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        p.top5(uploads)
        times.append(time.perf_counter() - t0)
    return load_s, times


def bench_page(run: RunDir, paths: list[Path], repeats: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    argv = [str(Path(sys.executable).parent / "hpcdl"), "serve", str(run.path), "--port", "0", "--no-browser"]
    proc = subprocess.Popen(argv + ["--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = next(m.group(1) for line in proc.stdout if (m := re.search(r"^ +URL: (http://\S+)", line)))
    times = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(300_000)
            for i in range(repeats + 1):  # the first loads the checkpoint: not timed
                page.goto(url)
                page.locator("input[type=file]").wait_for(state="attached")
                t0 = time.perf_counter()
                page.locator("input[type=file]").set_input_files([str(p) for p in paths])
                page.get_by_text(f"prediction for {paths[-1].name}:").wait_for()
                if i:
                    times.append(time.perf_counter() - t0)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return times


def row(name: str, times: list[float]) -> str:
    return f"| {name} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--page", action="store_true", help="also time the Streamlit page in headless chromium")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run, paths = make_run(Path(tmp))
        load_s, times = bench_module(run, paths, args.repeats)
        page_times = bench_page(run, paths, max(3, args.repeats // 4)) if args.page else []
    print(f"{platform.node()}: python {platform.python_version()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, CPU")  # fmt: skip
    print(f"load (build resnet18 + read the checkpoint): {load_s:.3f} s")
    print("| path | median (s) | min (s) | max (s) |\n|---|---|---|---|")
    print(row(f"`Predictor.top5` on 4 uploads ({args.repeats} repeats)", times))
    if page_times:
        print(row(f"page: upload 4 -> 4th answer shown ({len(page_times)} repeats)", page_times))


if __name__ == "__main__":
    main()
