"""The Streamlit page `hpcdl serve RUN` starts: upload images, read the top-5 classes from the run's checkpoint
(a detection run: the boxes it finds, drawn on each image, above a score threshold).

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


def uploads(p, label: str) -> list:
    files = st.file_uploader(label, type=list(predict.IMAGE_TYPES), accept_multiple_files=True)
    if not files:
        shown = ", ".join(p.classes[:12]) + (" ..." if len(p.classes) > 12 else "")
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


def detections(p) -> None:
    files = uploads(p, f"Images to search for objects (the model resizes them to {p.image_size} px on the short side)")
    threshold = st.slider("score threshold", 0.05, 1.0, 0.5, 0.05)
    if not files:
        return
    for upload, boxes, left, right, name in answered(files, lambda f: p.detect(f, threshold), [1, 2]):
        left.image(p.draw(upload, boxes), width=320)
        right.markdown(f"{len(boxes)} object(s) in {name} with a score of at least {threshold:.2f}")
        if boxes:
            rows = [(c, f"{q:.1%}", ", ".join(f"{v:.0f}" for v in b)) for c, q, b in boxes]
            right.table(pd.DataFrame(rows, columns=["category", "score", "box (x1, y1, x2, y2)"]))


def predictions(p) -> None:
    if p.task == "detection":
        detections(p)
        return
    files = uploads(p, f"Images to classify ({p.image_size}x{p.image_size} after resizing)")
    if not files:
        return
    for upload, top, left, right, name in answered(files, p.top5, [1, 3]):
        left.image(upload, width=160)
        right.markdown(f"prediction for {name}: **{top[0][0]}** ({top[0][1]:.1%})")
        table = pd.DataFrame({"class": [c for c, _ in top], "probability": [f"{q:.1%}" for _, q in top]})
        right.table(table.set_index("class"))


def history(p) -> None:
    rows = predict.curves(p.run)
    st.subheader("Training curves")
    if not rows:
        st.info("No epochs logged yet.")
        return
    df = pd.DataFrame(rows).set_index("epoch")
    loss, acc = st.columns(2)
    loss.caption("loss per epoch")
    loss.line_chart(df[[c for c in ("loss", "test_loss") if c in df]])
    if p.task == "detection":
        acc.caption("COCO mAP per epoch (AP@[.5:.95] and AP50 on the test images)")
        acc.line_chart(df[[c for c in ("test_map", "test_map50") if c in df]])
    else:
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
