"""The Streamlit page `hpcdl serve RUN` starts: upload images, read the top-5 classes from the run's checkpoint.

It also shows where the checkpoint is, the loss and accuracy per epoch, and the run's spec. All the model
work is hpc_dl.serve.predict's; this script only lays it out. Started as
`streamlit run page.py -- RUN_FOLDER [--device auto|cpu|cuda]`.
"""

from __future__ import annotations

import argparse
import sys

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
def predictor(run: str, device: str) -> predict.Predictor:
    return predict.load(run, device)


def header(p: predict.Predictor) -> None:
    spec = p.spec
    st.title(f"{spec['model']} on {spec['dataset']}")
    st.caption(
        f"run {p.run.run_id} · {spec['strategy']} · {spec.get('nodes', 1)}x{spec.get('gpus', 1)} · "
        f"epoch {p.epoch} of {spec.get('epochs')} · inference on {p.device}"
    )
    st.markdown(f"Checkpoint: `{p.checkpoint}`")


def predictions(p: predict.Predictor) -> None:
    uploads = st.file_uploader(
        f"Images to classify ({p.image_size}x{p.image_size} after resizing)",
        type=list(predict.IMAGE_TYPES),
        accept_multiple_files=True,
    )
    if not uploads:
        st.info(
            f"Upload one or more images; classes: {', '.join(p.classes[:12])}{' ...' if len(p.classes) > 12 else ''}"
        )
        return
    try:
        answers = p.top5(uploads)
    except HpcdlError as exc:
        st.error(str(exc))
        return
    for i, (upload, top) in enumerate(zip(uploads, answers, strict=True)):
        with st.container(key=f"prediction-{i}", border=True):
            left, right = st.columns([1, 3])
            left.image(upload, width=160)
            name = upload.name.replace("*", "\\*").replace("_", "\\_")
            right.markdown(f"prediction for {name}: **{top[0][0]}** ({top[0][1]:.1%})")
            table = pd.DataFrame({"class": [c for c, _ in top], "probability": [f"{q:.1%}" for _, q in top]})
            right.table(table.set_index("class"))


def history(p: predict.Predictor) -> None:
    rows = predict.curves(p.run)
    st.subheader("Training curves")
    if not rows:
        st.info("No epochs logged yet.")
        return
    df = pd.DataFrame(rows).set_index("epoch")
    loss, acc = st.columns(2)
    loss.caption("loss per epoch")
    loss.line_chart(df[[c for c in ("loss", "test_loss") if c in df]])
    acc.caption("accuracy per epoch")
    acc.line_chart(df[[c for c in ("accuracy", "test_accuracy") if c in df]])


def main() -> None:
    args = arguments(sys.argv[1:])
    st.set_page_config(page_title="hpcdl serve", layout="wide")
    try:
        p = predictor(args.run, args.device)
    except HpcdlError as exc:
        st.error(str(exc))
        st.stop()
    header(p)
    predictions(p)
    history(p)
    st.subheader("Spec")
    st.json(p.spec, expanded=False)


main()
