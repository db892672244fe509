"""The language data sets: byte streams cut into fixed-length blocks.

A block is context + 1 bytes of the stream; its item is (input, target) = (block[:-1], block[1:]), both
int64 (context,): the target at each position is the next byte. Blocks do not overlap. --train-samples
and --test-samples count blocks.

- `synthetic-text`: a seeded order-2 Markov source over 16 letters, made in memory (no file, no cache):
  each pair of letters has one likely successor (p 0.75), a second one (0.2) and the rest share 0.05, so
  a model learns the letters first (ln 256 -> ln 16 nats) and then the pairs' successors, under a nat a
  byte; on CPU the loss falls visibly within a minute. Train and test blocks are one stream, in that order.
- `text`: a UTF-8 file at --data-root, or every file under a folder (sorted by path, hidden ones left
  out), read as bytes and concatenated; the last tenth of the blocks (at least one) is the test set.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ...data import Data, DataError
from .model import VOCAB

ALPHABET = b"abcdefghijklmnop"
SOURCE_SEED = 1234  # the source's own seed: every run sees the same text (--seed shuffles it)
DEFAULT_BLOCKS = {"train": 2048, "test": 256}  # synthetic-text without --train-samples / --test-samples
TEST_FRACTION = 10  # text: 1 block in this many is a test block


class Blocks(Dataset):
    """A byte stream (uint8, 1-D) as its non-overlapping blocks of `context` + 1 bytes."""

    def __init__(self, tokens: torch.Tensor, context: int):
        self.tokens, self.context = tokens, context

    def __len__(self) -> int:
        return len(self.tokens) // (self.context + 1)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        n = self.context + 1
        block = self.tokens[i * n : (i + 1) * n].long()
        return block[:-1], block[1:]


def markov_bytes(count: int, seed: int = SOURCE_SEED) -> torch.Tensor:
    """`count` bytes of the order-2 Markov source (see the module's docstring), as uint8."""
    rng = random.Random(seed)
    k = len(ALPHABET)
    follows = [rng.randrange(k) for _ in range(k)]  # each letter's likely successor
    weights = []
    for pair in range(k * k):
        likely = follows[pair % k]
        second = rng.choice([c for c in range(k) if c != likely])  # the pair's own
        w = [0.05 / (k - 2)] * k
        w[likely], w[second] = 0.7, 0.25
        weights.append([sum(w[: j + 1]) for j in range(k)])  # cumulative, for random.choices
    letters = range(k)
    a, b = rng.randrange(k), rng.randrange(k)
    out = bytearray(count)
    for i in range(count):
        c = rng.choices(letters, cum_weights=weights[a * k + b])[0]
        out[i] = ALPHABET[c]
        a, b = b, c
    return torch.frombuffer(out, dtype=torch.uint8) if count else torch.zeros(0, dtype=torch.uint8)


def synthetic(context: int, train: int | None, test: int | None) -> tuple[Blocks, Blocks]:
    train, test = train or DEFAULT_BLOCKS["train"], test or DEFAULT_BLOCKS["test"]
    stream = markov_bytes((train + test) * (context + 1))
    cut = train * (context + 1)
    return Blocks(stream[:cut], context), Blocks(stream[cut:], context)


def read_bytes(root: Path) -> bytes:
    """A file's bytes, or every non-hidden file's under a folder, in path order."""
    if root.is_file():
        return root.read_bytes()
    if not root.is_dir():
        raise DataError(f"text: {root} is neither a file nor a folder")
    hidden = lambda p: any(part.startswith(".") for part in p.relative_to(root).parts)  # noqa: E731
    files = sorted(p for p in root.rglob("*") if p.is_file() and not hidden(p))
    return b"".join(p.read_bytes() for p in files)


def text(root: Path, context: int, train: int | None, test: int | None) -> tuple[Blocks, Blocks]:
    data = read_bytes(root)
    blocks = len(data) // (context + 1)
    if blocks < 2:
        raise DataError(
            f"text: {root} holds {len(data)} bytes, fewer than 2 blocks of {context + 1} (one to train, one to test)"
        )
    held = max(1, blocks // TEST_FRACTION)
    stream = torch.frombuffer(bytearray(data[: blocks * (context + 1)]), dtype=torch.uint8)
    cut = (blocks - held) * (context + 1)
    train_set, test_set = stream[:cut], stream[cut:]
    n = context + 1
    if train is not None:
        train_set = train_set[: train * n]
    if test is not None:
        test_set = test_set[: test * n]
    return Blocks(train_set, context), Blocks(test_set, context)


def load(dataset: str, data_root: str | None, context: int, train: int | None, test: int | None) -> Data:
    """The data set's train and test blocks for a model reading `context` tokens."""
    if dataset == "synthetic-text":
        train_set, test_set = synthetic(context, train, test)
    elif dataset == "text":
        if not data_root:
            raise DataError("text: needs --data-root (a UTF-8 file or a folder of them)")
        train_set, test_set = text(Path(data_root).expanduser(), context, train, test)
    else:
        raise DataError(f"unknown language dataset {dataset!r} (choose from synthetic-text, text)")
    return Data(train_set, test_set, num_classes=VOCAB)
