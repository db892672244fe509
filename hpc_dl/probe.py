"""hpcdl probe on the login node: submit the collective-bandwidth job (hpc_dl.jobs.probe, through
probe.sh.j2 over the real jobs' environment), wait for it, and read probe records back for collect and
plan. A probe is a run folder like any job's; its spec is a ddp job named hpcdl-probe (the launcher and
the allocation are a ddp job's), and rank 0 writes the record into RunDir.probe. Cheap: no torch, no pandas.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError
from .profiles import ClusterProfile
from .runs import RunDir, find_runs, read_json
from .spec import JobSpec

STUDY = "probe"
TEMPLATE = "probe.sh.j2"
JOB_NAME = "hpcdl-probe"
FORMAT = 1
MINUTES = 10


def bus_factor(op: str, n: int) -> float:
    """nccl-tests' busbw / algbw: what each rank's link carries per byte of the buffer, for n ranks."""
    return 2 * (n - 1) / n if op == "all_reduce" else (n - 1) / n


def ring_steps(op: str, n: int) -> int:
    """The steps of a ring collective over n ranks (each pays one message latency)."""
    return 2 * (n - 1) if op == "all_reduce" else n - 1


def probe_spec(profile: ClusterProfile, nodes: int, gpus: int, partition: str | None, device: str) -> JobSpec:
    """The probe's allocation: a ddp job of that shape, a few minutes, checked against the profile."""
    if nodes * gpus < 2:
        raise UsageError(f"invalid shape: {nodes} node(s) x {gpus} worker(s) (a probe needs 2 workers or more)")
    spec = JobSpec(nodes=nodes, gpus=gpus, partition=partition, device=device, time_limit=MINUTES, job_name=JOB_NAME)
    profile.check(spec)
    return spec


def sweep_probes(profile: ClusterProfile, specs: list[JobSpec]) -> list[JobSpec]:
    """`sweep --probe`: one probe per shape of the sweep with 2 workers or more (its nodes x GPUs, its
    partition and device), in the order the shapes first appear."""
    shapes = dict.fromkeys((s.nodes, s.gpus) for s in specs if s.nodes * s.gpus >= 2)
    if not shapes:
        raise UsageError("nothing to probe: every point of the sweep has 1 worker (--probe needs a shape of 2 or more)")
    base = specs[0]
    return [probe_spec(profile, n, g, base.partition, base.device) for n, g in shapes]


def is_probe_spec(spec: JobSpec) -> bool:
    return spec.job_name == JOB_NAME


def is_probe(run: RunDir) -> bool:
    """Whether a run folder is a probe's (collect leaves it out of the training tables)."""
    spec = run.read_spec()
    return spec is not None and is_probe_spec(spec)


def read(run: RunDir) -> dict | None:
    """A probe run's record, or None where it wrote none (yet) or one of another format."""
    record = read_json(run.probe)
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("results"), list):
        return None
    return {**record, "run": run.run_id, "profile": (read_json(run.submission) or {}).get("profile")}


def find(paths: list[Path]) -> list[dict]:
    """The probe records under the given folders, oldest first."""
    found = [read(run) for run in find_runs([Path(p) for p in paths]) if is_probe(run)]
    return sorted((r for r in found if r is not None), key=lambda r: r.get("started") or 0)


def choose(records: list[dict], profile: str | None, device: str | None) -> dict | None:
    """The newest record of that profile and device kind (any, where the study does not say)."""
    fits = [
        r
        for r in records
        if (profile is None or r.get("profile") in (None, profile)) and (device is None or r.get("device") == device)
    ]
    return fits[-1] if fits else None
