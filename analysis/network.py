"""Probe records -> the network a plan uses. Pure: records and DataFrames in, DataFrames and Links out.

Per collective and placement (intra-node, inter-node), the probe's times are fitted with the ring model

    t(S, n) = a * steps(n) + f(n) * S / B

where steps(n) = 2(n-1) for all-reduce and n-1 for all-gather and reduce-scatter (a message latency each),
f(n) = 2(n-1)/n for all-reduce and (n-1)/n for the other two (nccl-tests' bus factor), S the buffer's
bytes and B the bus bandwidth. Least squares on the relative error (every message size counts alike);
the relative residual's RMS is the fit's spread, which a plan carries into its interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hpc_dl.probe import bus_factor, ring_steps

PROBE_COLUMNS = [
    "probe",
    "device",
    "op",
    "ranks",
    "nodes",
    "placement",
    "bytes",
    "time_s",
    "algbw_gbps",
    "busbw_gbps",
    "iterations",
]
LINK_COLUMNS = ["op", "placement", "latency_us", "busbw_gbps", "residual", "points", "max_ranks", "source"]
OPS = ("all_reduce", "all_gather", "reduce_scatter")
PLACEMENTS = ("intra", "inter")
WORDS = {"all_reduce": "all-reduce", "all_gather": "all-gather", "reduce_scatter": "reduce-scatter"}


@dataclass(frozen=True)
class Link:
    """One collective over one placement: its latency per ring step and its bus bandwidth."""

    op: str
    placement: str
    latency_s: float
    busbw_gbps: float
    residual: float = 0.0  # relative RMS of the fit
    points: int = 0
    max_ranks: int = 0
    source: str = "given"

    def time(self, nbytes: float, n: int) -> float:
        """Seconds for one collective of nbytes over n ranks (0 for one rank)."""
        if n < 2 or nbytes <= 0:
            return 0.0
        return self.latency_s * ring_steps(self.op, n) + bus_factor(self.op, n) * nbytes / (self.busbw_gbps * 1e9)

    def describe(self, nbytes: float) -> str:
        """'all-reduce of 98 MB over 12.5 GB/s inter-node'"""
        return f"{WORDS[self.op]} of {megabytes(nbytes)} over {self.busbw_gbps:.3g} GB/s {self.placement}-node"


def megabytes(nbytes: float) -> str:
    return f"{nbytes / 1e6:.3g} MB"


def probe_table(records: list[dict]) -> pd.DataFrame:
    """Every measurement of the records, one row each (the record's run id in `probe`)."""
    rows = [
        {"probe": r.get("run"), "device": r.get("device"), **{k: m.get(k) for k in PROBE_COLUMNS[2:]}}
        for r in records
        for m in r.get("results", [])
        if isinstance(m, dict) and m.get("op") in OPS
    ]
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)


def fit_link(rows: pd.DataFrame, op: str, placement: str, source: str) -> Link | None:
    """The ring model through one collective's measurements over one placement (None without two points)."""
    rows = rows[(rows["op"] == op) & (rows["placement"] == placement) & (rows["time_s"] > 0)]
    if len(rows) < 2:
        return None
    n, size, t = (rows[c].to_numpy(dtype=float) for c in ("ranks", "bytes", "time_s"))
    steps = np.array([ring_steps(op, int(k)) for k in n], dtype=float)
    moved = np.array([bus_factor(op, int(k)) for k in n]) * size
    design = np.column_stack([steps / t, moved / t])
    (a, beta), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
    if beta <= 0:  # no bandwidth term left (latency-bound everywhere): the largest message's bus bandwidth
        beta = float(np.max(t / moved))
    a = max(float(a), 0.0)
    fitted = a * steps + beta * moved
    residual = float(np.sqrt(np.mean((fitted / t - 1.0) ** 2)))
    return Link(op, placement, a, 1e-9 / beta, residual, len(rows), int(n.max()), source)


def fit_links(table: pd.DataFrame, source: str) -> dict[tuple[str, str], Link]:
    """Every (collective, placement) the table measured."""
    links = {}
    for op in OPS:
        for placement in PLACEMENTS:
            link = fit_link(table, op, placement, source)
            if link is not None:
                links[(op, placement)] = link
    return links


def links_frame(links: dict[tuple[str, str], Link]) -> pd.DataFrame:
    rows = [
        [k.op, k.placement, k.latency_s * 1e6, k.busbw_gbps, k.residual, k.points, k.max_ranks, k.source]
        for k in links.values()
    ]
    return pd.DataFrame(rows, columns=LINK_COLUMNS)


class Network:
    """The links a plan asks for by collective and placement; one that was not measured is stood in for
    by its nearest relative (the other placement, then all-reduce), with a note saying so."""

    def __init__(self, links: dict[tuple[str, str], Link], source: str):
        self.links, self.source = dict(links), source
        self.notes: set[str] = set()

    def link(self, op: str, placement: str) -> Link:
        for key in ((op, placement), (op, _other(placement)), ("all_reduce", placement), ("all_reduce", "intra")):
            if key in self.links:
                if key != (op, placement):
                    self.notes.add(
                        f"{WORDS[op]} {placement}-node not measured: the {WORDS[key[0]]} {key[1]}-node figures stand in"
                    )
                found = self.links[key]
                return Link(
                    op,
                    placement,
                    found.latency_s,
                    found.busbw_gbps,
                    found.residual,
                    found.points,
                    found.max_ranks,
                    found.source,
                )
        raise KeyError(f"no link for {op} {placement}")

    @classmethod
    def uniform(cls, busbw_gbps: float, latency_s: float, source: str, residual: float = 0.0) -> Network:
        """One bandwidth and latency for every collective and placement (a fit from the study, or given)."""
        links = {
            (op, pl): Link(op, pl, latency_s, busbw_gbps, residual, 0, 0, source) for op in OPS for pl in PLACEMENTS
        }
        return cls(links, source)


def _other(placement: str) -> str:
    return "inter" if placement == "intra" else "intra"


def finite(x: float) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


SUMMARY_HEADERS = {
    "probe": "probe",
    "op": "collective",
    "placement": "placement",
    "ranks": "ranks",
    "latency_us": "smallest message (us)",
    "bytes": "largest message (B)",
    "busbw_gbps": "bus bandwidth (GB/s)",
}


def probe_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per probe, collective, placement and group size: the smallest message's time (latency) and the
    largest one's bus bandwidth, as nccl-tests' tables show them."""
    rows = []
    for (run, op, pl, n), g in table.groupby(["probe", "op", "placement", "ranks"], sort=True):
        small, large = g.loc[g["bytes"].idxmin()], g.loc[g["bytes"].idxmax()]
        rows.append([run, WORDS[op], pl, int(n), small["time_s"] * 1e6, int(large["bytes"]), large["busbw_gbps"]])
    return pd.DataFrame(rows, columns=list(SUMMARY_HEADERS))
