"""The language models: a decoder-only transformer over bytes, nanoGPT's shape.

Token and position embeddings, N blocks of pre-LN causal self-attention (torch's
scaled_dot_product_attention with is_causal=True: the fused kernels where the device has them) and a
4x MLP, a final LayerNorm, and a head tied to the token embedding.

Tokens are bytes (vocabulary 256): nothing to download (a BPE tokenizer's vocabulary would have to be
fetched, and these nodes are offline), every file is exact input (no unknown token, no normalisation),
and perplexity is per byte, comparable across data sets.

Layout for the strategies: each block is a top-level child, so fsdp shards block by block (the usual
FSDP recipe for a transformer); the embeddings are the root's own parameters, so the tied head reads the
same gathered weight in the root's forward as the embedding lookup does. For the pipeline, `sequence()`
lays it out as the embeddings, the blocks and the head, so stages are cut between blocks; the first and
the last stage both hold the token embedding (Megatron-LM's way: their gradients are summed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from .... import catalog

VOCAB = 256  # bytes


@dataclass(frozen=True)
class Size:
    layers: int
    heads: int
    width: int

    def parameters(self, context: int) -> int:
        """The exact parameter count: per block 12 w^2 + 13 w, the embeddings, the final LayerNorm."""
        w = self.width
        return self.layers * (12 * w * w + 13 * w) + (VOCAB + context) * w + 2 * w


SIZES = {
    "gpt-tiny": Size(layers=4, heads=4, width=128),
    "gpt-small": Size(layers=8, heads=8, width=512),
    "gpt-medium": Size(layers=16, heads=12, width=768),
}


class Block(nn.Module):
    """Pre-LN: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


def embed(idx: torch.Tensor, wte: torch.Tensor, wpe: torch.Tensor) -> torch.Tensor:
    """Token plus position embeddings: (batch, tokens) int64 bytes -> (batch, tokens, width)."""
    t, context = idx.shape[1], wpe.shape[0]
    if t > context:
        raise ValueError(f"{t} tokens exceed the model's context of {context}")
    return F.embedding(idx, wte) + wpe[:t]


def head(x: torch.Tensor, ln_f: nn.LayerNorm, wte: torch.Tensor) -> torch.Tensor:
    """The final LayerNorm, then the head tied to the token embedding: -> (batch, tokens, VOCAB) logits, in
    the embedding's dtype (fsdp's low precision: the final LayerNorm is its own shard, whose output comes
    back in fp32)."""
    return F.linear(ln_f(x).to(wte.dtype), wte)


class Embed(nn.Module):
    """The embeddings as a layer of their own (a pipeline's first), holding the GPT's own parameters."""

    def __init__(self, wte: nn.Parameter, wpe: nn.Parameter):
        super().__init__()
        self.wte, self.wpe = wte, wpe

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return embed(idx, self.wte, self.wpe)


class Head(nn.Module):
    """The final LayerNorm and the tied head as a layer of their own (a pipeline's last)."""

    def __init__(self, ln_f: nn.LayerNorm, wte: nn.Parameter):
        super().__init__()
        self.ln_f, self.wte = ln_f, wte

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return head(x, self.ln_f, self.wte)


class GPT(nn.Module):
    """(batch, tokens) int64 bytes -> (batch, tokens, VOCAB) logits of the next byte at each position.

    `checkpointing` (--activation-checkpointing): each block's activations are recomputed in the backward
    pass (torch.utils.checkpoint, non-reentrant) instead of kept from the forward: less memory, more compute.
    """

    def __init__(self, size: Size, context: int, checkpointing: bool = False):
        super().__init__()
        self.context, self.layers, self.checkpointing = context, size.layers, checkpointing
        self.wte = nn.Parameter(torch.empty(VOCAB, size.width))
        self.wpe = nn.Parameter(torch.empty(context, size.width))
        for i in range(size.layers):
            self.add_module(f"block{i}", Block(size.width, size.heads))
        self.ln_f = nn.LayerNorm(size.width)
        self.reset_parameters()

    def blocks(self) -> list[Block]:
        return [getattr(self, f"block{i}") for i in range(self.layers)]

    def sequence(self) -> list[nn.Module]:
        """The model as layers in order, for pipeline stages: the embeddings, each block, the tied head (the
        first and the last layer hold the same token embedding)."""
        return [Embed(self.wte, self.wpe), *self.blocks(), Head(self.ln_f, self.wte)]

    def reset_parameters(self) -> None:
        """GPT-2's: N(0, 0.02), the residual projections scaled by 1/sqrt(2 layers), zero biases."""
        for p in (self.wte, self.wpe):
            nn.init.normal_(p, std=0.02)
        for block in self.blocks():
            for lin in (block.qkv, block.fc, block.proj, block.out):
                std = 0.02 / math.sqrt(2 * self.layers) if lin in (block.proj, block.out) else 0.02
                nn.init.normal_(lin.weight, std=std)
                nn.init.zeros_(lin.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = embed(idx, self.wte, self.wpe)
        recompute = self.checkpointing and torch.is_grad_enabled()
        for block in self.blocks():
            x = checkpoint(block, x, use_reentrant=False) if recompute else block(x)
        return head(x, self.ln_f, self.wte)


def context_of(name: str) -> int:
    """The catalog's context of a language model (the block length its data is cut to)."""
    info = catalog.MODELS.get(name)
    if name not in SIZES or info is None or info.context is None:
        raise ValueError(f"unknown language model {name!r} (choose from {', '.join(SIZES)})")
    return info.context


def build_model(name: str, checkpointing: bool = False) -> GPT:
    return GPT(SIZES[name], context_of(name), checkpointing)
