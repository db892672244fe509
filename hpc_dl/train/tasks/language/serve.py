"""A language run's checkpoint as a text generator: `load(run, spec, weights, epoch, device) -> Generator`,
`Generator.continuation(prompt, ...)`, and the serve page's view of it (a prompt box and the model's
continuation).

The model is rebuilt as model.py builds it for training and gets the checkpoint's state_dict. A prompt is
its UTF-8 bytes, the tokens the model was trained on; the model extends it one byte at a time, reading
the last `context` bytes: greedy (the likeliest next byte) or sampled at a temperature (softmax of the
logits / temperature, from a seeded generator, so one seed gives one continuation). The bytes are decoded
as UTF-8, an invalid sequence shown as U+FFFD.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ....errors import HpcdlError, UsageError
from ....runs import RunDir
from ..base import fitted
from .model import build_model, context_of

LENGTH = 120  # bytes the page continues a prompt by, unless told
MAX_LENGTH = 1000
PROMPT_BYTES = 32  # the page's first prompt: this many bytes of the run's own data set


def sample_prompt(spec: dict) -> str:
    """The start of the run's data: the synthetic source's first bytes, or a text file's; '' if unreadable."""
    from . import data

    if spec.get("dataset") == "synthetic-text":
        return bytes(data.markov_bytes(PROMPT_BYTES).tolist()).decode()
    try:
        root = Path(spec.get("data_root") or "")
        first = root if root.is_file() else min(p for p in root.rglob("*") if p.is_file() and p.name[0] != ".")
        with open(first, "rb") as f:
            return f.read(PROMPT_BYTES).decode("utf-8", errors="ignore")
    except (OSError, ValueError):
        return ""


@dataclass
class Generator:
    run: RunDir
    spec: dict
    model: Any
    device: Any
    epoch: int
    context: int
    task: str = "language"
    chart = ("test perplexity per epoch (per byte)", ("test_perplexity",))

    @property
    def checkpoint(self) -> Path:
        return self.run.last_checkpoint

    def continuation(self, prompt: str, length: int = LENGTH, temperature: float = 0.0, seed: int = 0) -> str:
        """The `length` bytes the model writes after `prompt`, decoded: temperature 0 is greedy, above 0 the
        bytes are sampled at that temperature (seeded)."""
        import torch

        start = prompt.encode("utf-8")
        if not start:
            raise UsageError("the prompt is empty: type a few characters for the model to continue")
        if not 1 <= length <= MAX_LENGTH:
            raise UsageError(f"invalid length: {length} (the page continues a prompt by 1 to {MAX_LENGTH} bytes)")
        tokens = torch.tensor([list(start)], dtype=torch.long, device=self.device)
        rng = torch.Generator(device=self.device).manual_seed(seed)
        with torch.inference_mode():
            for _ in range(length):
                logits = self.model(tokens[:, -self.context :])[0, -1].float()
                if temperature > 0:
                    nxt = torch.multinomial(torch.softmax(logits / temperature, 0), 1, generator=rng)
                else:
                    nxt = logits.argmax().view(1)
                tokens = torch.cat([tokens, nxt.view(1, 1)], dim=1)
        return bytes(tokens[0, len(start) :].tolist()).decode("utf-8", errors="replace")

    def view(self, ui) -> None:
        """A prompt box, greedy or sampled decoding, and the continuation the model writes."""
        st = ui.st
        with st.form("prompt"):
            prompt = st.text_area(
                "Prompt", sample_prompt(self.spec), help=f"UTF-8; the model reads its last {self.context} bytes"
            )
            left, right, length_col = st.columns(3)
            mode = left.radio("decoding", ["greedy", "temperature"], horizontal=True)
            temperature = right.slider("temperature", 0.1, 2.0, 1.0, 0.1, help="sampling only; seed 0")
            length = length_col.number_input("bytes to write", 1, MAX_LENGTH, LENGTH)
            asked = st.form_submit_button("Continue")
        if not asked:
            return
        try:
            text = self.continuation(prompt, int(length), temperature if mode == "temperature" else 0.0)
        except HpcdlError as exc:
            st.error(str(exc))
            return
        with st.container(key="continuation", border=True):
            how = "greedy" if mode == "greedy" else f"sampled at temperature {temperature:.1f}"
            st.caption(f"the model's next {int(length)} bytes ({how})")
            st.code(text, language=None, wrap_lines=True)


def load(run: RunDir, spec: dict, weights: dict, epoch: int, device) -> Generator:
    """The checkpoint's language model on `device`."""
    model = build_model(spec["model"])
    model = fitted(model, weights, run.run_id, spec["model"], device)
    return Generator(run, spec, model, device, epoch, context_of(spec["model"]))
