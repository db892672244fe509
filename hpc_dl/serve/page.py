"""The Streamlit page `hpcdl serve RUN` starts: the run's checkpoint answering what you give it.

What it asks for and how it shows the answers is the run's task's view (Served.view: a classifier's
top-5 classes of each uploaded image, a detector's boxes drawn on it, a language model's continuation of
a prompt), laid out with this page's widgets
(UI); the page adds where the checkpoint is, the training curves the task names (Served.chart) and the
run's spec. All the model work is the task's (hpc_dl.serve.predict loads it); this script only lays it
out. Started as `streamlit run page.py -- RUN_FOLDER [--device auto|cpu|cuda]`.
"""

from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

import pandas as pd
import streamlit as st

from hpc_dl.errors import HpcdlError
from hpc_dl.serve import predict


def arguments(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hpc_dl/serve/page.py")
    p.add_argument("run", help="the run folder")
    p.add_argument("--device", default="auto")
    return p.parse_args(argv)


@st.cache_resource(show_spinner="Loading the checkpoint ...")
def predictor(run: str, device: str):
    return predict.load(run, device)


def header(p) -> None:
    spec = p.spec
    st.title(f"{spec['model']} on {spec['dataset']}")
    st.caption(
        f"run {p.run.run_id} · {spec['strategy']} · {spec.get('nodes', 1)}x{spec.get('gpus', 1)} · "
        f"epoch {p.epoch} of {spec.get('epochs')} · inference on {p.device}"
    )
    st.markdown(f"Checkpoint: `{p.checkpoint}`")


def uploads(label: str, types, classes: list[str]) -> list:
    """An upload field for several files of `types`; until there are some, a hint naming the classes."""
    files = st.file_uploader(label, type=list(types), accept_multiple_files=True)
    if not files:
        shown = ", ".join(classes[:12]) + (" ..." if len(classes) > 12 else "")
        st.info(f"Upload one or more images; classes: {shown}")
    return files or []


def answered(files: list, ask, widths: list[int]):
    """Each upload with the model's answer (`ask(files)`), in a bordered box of its own: (upload, answer,
    left column, right column, the upload's name escaped for Markdown). A bad upload is one error line."""
    try:
        answers = ask(files)
    except HpcdlError as exc:
        st.error(str(exc))
        return
    for i, (upload, answer) in enumerate(zip(files, answers, strict=True)):
        with st.container(key=f"prediction-{i}", border=True):
            left, right = st.columns(widths)
            yield upload, answer, left, right, upload.name.replace("*", "\\*").replace("_", "\\_")


UI = SimpleNamespace(st=st, pd=pd, uploads=uploads, answered=answered)  # what a task's view lays out with


def history(p) -> None:
    rows = predict.curves(p.run)
    st.subheader("Training curves")
    if not rows:
        st.info("No epochs logged yet.")
        return
    df = pd.DataFrame(rows).set_index("epoch")
    loss, quality = st.columns(2)
    loss.caption("loss per epoch")
    loss.line_chart(df[[c for c in ("loss", "test_loss") if c in df]])
    caption, keys = p.chart
    quality.caption(caption)
    quality.line_chart(df[[c for c in keys if c in df]])


def main() -> None:
    args = arguments(sys.argv[1:])
    st.set_page_config(page_title="hpcdl serve", layout="wide")
    try:
        p = predictor(args.run, args.device)
    except HpcdlError as exc:
        st.error(str(exc))
        st.stop()
    header(p)
    p.view(UI)
    history(p)
    st.subheader("Spec")
    st.json(p.spec, expanded=False)


main()
