"""What a plan is made from, read from run folders: the study's timed epochs with each run's sizes
(run_start) and the time their threads waited for a CPU (`runqueue(s)`, hpc_dl/train/events.py), the
profile's limits on a shape, and the probe whose network it uses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hpc_dl import events, probe, strategies
from hpc_dl.errors import CollectError, UsageError
from hpc_dl.runs import RunDir, read_json

from . import load as load_mod
from . import scaling as scaling_mod
from .network import Network, fit_links, probe_table

SIZE_FIELDS = (
    "parameters",
    "parameter_bytes",
    "gradient_bytes",
    "sharded_blocks",
    "microbatches",
    "compression",
    "backward_passes",
    "average",
)
DEFAULT_WORKERS = (1, 2, 4, 8, 16, 32, 64)


def run_sizes(folder: str) -> dict:
    """A run's size fields from its first run_start (lowest rank that has one)."""
    run = RunDir(Path(folder))
    for path in run.event_files():
        start = next((ev for ev in events.read_rank(path)[0] if ev["event"] == "run_start"), None)
        if start is not None:
            return {k: start.get(k) for k in SIZE_FIELDS}
    return dict.fromkeys(SIZE_FIELDS)


def run_waits(folder: str) -> dict[int, float]:
    """Per epoch, the longest any rank's training thread waited for a CPU while it trained (seconds): the
    growth of its run delay (`runqueue(s)`) since its previous stamped event, scaled to the epoch's
    training share of that interval (evaluation and checkpoints make up the rest)."""
    out: dict[int, float] = {}
    for path in RunDir(Path(folder)).event_files():
        prev = None
        for ev in events.read_rank(path)[0]:
            if ev["event"] not in ("run_start", "epoch_stop") or ev.get("recovered"):
                continue
            stamp, when = ev.get("runqueue(s)"), ev.get("time")
            if ev["event"] == "epoch_stop" and prev is not None and None not in (stamp, prev[1], when, prev[0]):
                window, took = when - prev[0], ev.get("time(s)") or 0.0
                share = min(1.0, took / window) if window > 0 else 1.0
                epoch = ev.get("epoch")
                out[epoch] = max(out.get(epoch, 0.0), max(stamp - prev[1], 0.0) * share)
            prev = (when, stamp)
    return out


def study_points(study: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, points): the study's runs, and one row per timed epoch of each completed run that recorded
    its model's sizes, with the run's group, shape and sizes."""
    if not study.is_dir():
        raise UsageError(f"no such study: {study} (give a study folder, or a study name under the runs folder)")
    loaded = load_mod.load([study])
    done, timed = scaling_mod.measured(loaded.runs, loaded.epochs, include_warmup=False)
    if done.empty:
        raise CollectError(f"no completed run in {study}: nothing to plan from (hpcdl status shows why)")
    sizes = pd.DataFrame([{"run": r, **run_sizes(f)} for r, f in zip(done["run"], done["folder"], strict=True)])
    cols = [*scaling_mod.GROUP, "run", "workers", "nodes", "gpus_per_node", "global_batch_size", "epochs", "folder"]
    points = timed.drop(columns=["workers"]).merge(done[cols], on="run").merge(sizes, on="run")
    points = points.dropna(subset=["throughput", "gradient_bytes", "global_batch_size", "samples"])
    waits = {r: run_waits(f) for r, f in zip(done["run"], done["folder"], strict=True)}
    points["runqueue_s"] = [waits[r].get(e, 0.0) for r, e in zip(points["run"], points["epoch"], strict=True)]
    points["raw_throughput"] = points["throughput"]  # as measured; the model takes the CPU wait out
    points["throughput"] = points["samples"] / (points["time_s"] - points["runqueue_s"]).clip(lower=1e-9)
    if points.empty:
        raise CollectError(f"no completed run in {study} recorded its model's sizes (run_start): nothing to plan from")
    return loaded.runs, points.reset_index(drop=True)


@dataclass(frozen=True)
class Limits:
    """Where planned shapes must fit: a partition of a profile."""

    profile: str
    partition: str
    max_nodes: int
    per_node: int  # GPUs per node (workers per node on a CPU partition: the study's most)
    gpus: bool

    def describe(self) -> str:
        per = f"{self.per_node} GPUs per node" if self.gpus else f"{self.per_node} workers per node measured"
        return f"partition {self.partition!r} of profile {self.profile!r} has {per}, at most {self.max_nodes} node(s)"


def limits(points: pd.DataFrame, profile: str | None, partition: str | None) -> Limits:
    """The partition's limits: of the profile named, else the one the study's runs were submitted with."""
    folder = Path(points["folder"].iloc[0])
    if profile is not None:
        from hpc_dl import profiles

        data = profiles.load(profile).to_dict()
    else:
        data = read_json(RunDir(folder).profile) or {}
    parts = data.get("partitions") or {}
    if not parts:
        raise UsageError(f"the runs in {folder.parent} do not record their profile: name one with --profile")
    spec = RunDir(folder).read_spec()
    name = partition or (spec.partition if spec else None) or data.get("default_partition")
    if name not in parts:
        raise UsageError(
            f"unknown partition {name!r} for profile {data.get('name')!r} (choose from {', '.join(parts)})"
        )
    part = parts[name]
    gpus = int(part.get("gpus_per_node") or 0)
    per = gpus if gpus > 0 else int(points["gpus_per_node"].max())
    return Limits(str(data.get("name")), name, int(part.get("max_nodes") or 1), per, gpus > 0)


def shapes(
    workers: list[int] | None, nodes: list[int] | None, lim: Limits, strategy: str, measured: pd.DataFrame
) -> list[tuple[int, int]]:
    """(workers, nodes) to plan: each worker count on the node counts given (or the fewest that hold it),
    checked against the partition and the strategy; the measured shapes come along."""
    own = strategies.get(strategy).max_nodes  # hogwild and dp: one node
    most = min(own or lim.max_nodes, lim.max_nodes)
    if workers is None:  # every power of two that fits
        workers = [w for w in DEFAULT_WORKERS if w <= most * lim.per_node]
    out = {(int(r.workers), int(r.nodes)) for r in measured.itertuples()}
    for n in workers:
        for k in nodes or [max(1, math.ceil(n / lim.per_node))]:
            if n < 1 or n % k:
                raise UsageError(f"invalid shape: {n} workers on {k} node(s) (the workers must split evenly)")
            if k > most or (lim.gpus and n // k > lim.per_node):
                why = lim.describe() + (f"; {strategy} runs on one node" if own and k > own else "")
                raise UsageError(f"invalid shape: {n} workers on {k} node(s) ({why})")
            out.add((n, k))
    return sorted(out)


def find_probe(ref: str | None, study: Path, runs_root: Path, profile: str | None, device: str | None) -> dict | None:
    """The probe record a plan uses: the one named (a probe's run folder or id, or a folder of probes),
    else the newest of the study's profile and device in the study folder, then in the runs root's probes."""
    if ref is not None:
        from hpc_dl.runs import resolve

        path = Path(ref)
        if path.is_dir() and not RunDir(path).is_run():
            found = probe.find([path])
        else:
            found = [r for r in [probe.read(resolve(ref, runs_root))] if r is not None]
        if not found:
            raise UsageError(f"no probe record in {ref} (run hpcdl probe, and wait for it to complete)")
        return found[-1]
    for where in (study, runs_root / probe.STUDY):
        chosen = probe.choose(probe.find([where]) if where.is_dir() else [], profile, device)
        if chosen is not None:
            return chosen
    return None


def probe_network(record: dict) -> Network:
    links = fit_links(probe_table([record]), f"probe {record.get('run')}")
    if not links:
        raise UsageError(f"probe {record.get('run')} has no measurements to fit (it needs 2 workers or more)")
    return Network(links, f"probe {record.get('run')} ({record.get('backend')}, {record.get('nodes')} node(s))")
