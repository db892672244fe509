"""Each strategy's communication per step, from the model's bytes and the network: the terms of
analysis/plan.py's step model, and the one-line formula of each (docs/plan.md)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from hpc_dl.errors import UsageError

from .network import Network

DDP_BUCKET = 25 * 2**20  # DistributedDataParallel's bucket_cap_mb
HOROVOD_FUSION = 64 * 2**20  # HOROVOD_FUSION_THRESHOLD's default


@dataclass(frozen=True)
class Sizes:
    """What a strategy's communication depends on, from run_start and the spec."""

    gradient_bytes: float
    parameter_bytes: float
    parameters: float
    precision: str = "fp32"
    blocks: int = 1  # fsdp: sharded blocks
    microbatches: int = 4  # pipeline
    compression: str = "none"  # horovod
    backward_passes: int = 1  # horovod
    average: str = "once"  # psgd


@dataclass(frozen=True)
class Term:
    name: str
    seconds: float  # per step, before overlap
    text: str  # what it is, in words
    chunks: int = 1  # buckets or blocks it is split into (what can overlap)
    residual: float = 0.0  # its link's relative fit residual


def placement(nodes: int) -> str:
    return "intra" if nodes <= 1 else "inter"


def _ring_all_reduce(z: Sizes, n: int, nodes: int, net: Network, nbytes: float, bucket: int, name: str) -> Term:
    """An all-reduce of nbytes in buckets of at most `bucket` bytes: a latency per bucket, the bytes once."""
    link = net.link("all_reduce", placement(nodes))
    k = max(1, math.ceil(nbytes / bucket))
    return Term(name, k * link.time(nbytes / k, n), link.describe(nbytes), k, link.residual)


def ddp_terms(z: Sizes, n: int, nodes: int, net: Network) -> list[Term]:
    return [_ring_all_reduce(z, n, nodes, net, z.gradient_bytes, DDP_BUCKET, "all-reduce")] if n > 1 else []


def horovod_terms(z: Sizes, n: int, nodes: int, net: Network) -> list[Term]:
    if n < 2:
        return []
    nbytes = z.gradient_bytes / 2 if z.compression == "fp16" else z.gradient_bytes
    term = _ring_all_reduce(z, n, nodes, net, nbytes, HOROVOD_FUSION, "all-reduce")
    passes = max(1, z.backward_passes)
    return [Term(term.name, term.seconds / passes, term.text, term.chunks, term.residual)]


def fsdp_terms(z: Sizes, n: int, nodes: int, net: Network) -> list[Term]:
    """Per block: the parameters gathered for the forward and again for the backward, the gradients
    reduce-scattered; parameters in the compute precision, gradients reduced in fp32."""
    if n < 2:
        return []
    u = max(1, z.blocks)
    params = z.parameter_bytes / 2 if z.precision in ("bf16", "fp16") else z.parameter_bytes
    gather, scatter = net.link("all_gather", placement(nodes)), net.link("reduce_scatter", placement(nodes))
    return [
        Term("all-gather", 2 * u * gather.time(params / u, n), "2 x " + gather.describe(params), u, gather.residual),
        Term(
            "reduce-scatter",
            u * scatter.time(z.gradient_bytes / u, n),
            scatter.describe(z.gradient_bytes),
            u,
            scatter.residual,
        ),
    ]


def psgd_terms(z: Sizes, n: int, nodes: int, net: Network) -> list[Term]:
    """Parameters (as float64, mpi4py's buffers) averaged every K steps; none per step with 'once'."""
    if n < 2 or not z.average.startswith("every:"):
        return []
    every = max(1, int(z.average.split(":", 1)[1]))
    link = net.link("all_reduce", placement(nodes))
    nbytes = 8 * z.parameters
    return [
        Term(
            "parameter average",
            link.time(nbytes, n) / every,
            f"{link.describe(nbytes)} every {every} steps",
            1,
            link.residual,
        )
    ]


def no_terms(z: Sizes, n: int, nodes: int, net: Network) -> list[Term]:
    return []


@dataclass(frozen=True)
class StrategyModel:
    name: str
    formula: str  # its one line (docs/plan.md, the plan's notes)
    terms: Callable[[Sizes, int, int, Network], list[Term]]
    window: tuple[str, ...] = ()  # the timed phases the communication runs in (and overlaps)
    pipeline: bool = False


MODELS = {
    m.name: m
    for m in [
        StrategyModel(
            "ddp",
            "T = C + kappa x exposed(k x a x 2(N-1) + 2(N-1)/N x S / B), k = ceil(S / 25 MiB)",
            ddp_terms,
            ("backward_s",),
        ),
        StrategyModel(
            "horovod",
            "T = C + kappa x exposed(k x a x 2(N-1) + 2(N-1)/N x S' / B) / K, S' = S/2 with fp16, "
            "k = ceil(S' / 64 MiB), K backward passes",
            horovod_terms,
            ("backward_s",),
        ),
        StrategyModel(
            "fsdp",
            "T = C + kappa x exposed(u x a x 3(N-1) + (N-1)/N x (2P / B_ag + S / B_rs)), u blocks",
            fsdp_terms,
            ("forward_s", "backward_s"),
        ),
        StrategyModel(
            "psgd",
            "T = C (average once); T = C + kappa x (a x 2(N-1) + 2(N-1)/N x 8 params / B) / K (every:K)",
            psgd_terms,
        ),
        StrategyModel("hogwild", "T = C (no communication; one node)", no_terms),
        StrategyModel(
            "pipeline",
            "T = C / p x (m + p - 1) / m: the bubble (p-1)/(m+p-1), p stages, m micro-batches",
            no_terms,
            pipeline=True,
        ),
    ]
}


def model_for(strategy: str) -> StrategyModel:
    if strategy not in MODELS:
        raise UsageError(f"no plan model for strategy {strategy!r} (models: {', '.join(sorted(MODELS))})")
    return MODELS[strategy]
