"""hpcdl probe, on the compute nodes: the time of all-reduce, all-gather and reduce-scatter against message
size, for groups of 2..N ranks within one node and across nodes, with torch.distributed (nccl on GPUs,
gloo on CPU workers). Launched by torchrun as a ddp job is (sbatch_templates/probe.sh.j2).

Sizes and bandwidths are reported as nccl-tests reports them: `bytes` is the whole buffer (all-reduce),
the gathered output (all-gather) or the scattered input (reduce-scatter); algbw = bytes / time; busbw =
algbw x 2(n-1)/n for all-reduce and x (n-1)/n for the other two; a time is the slowest rank's mean over
the timed iterations. Every group holds rank 0, which writes the probe record (RunDir.probe).
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time
from pathlib import Path

import torch
import torch.distributed as dist

from hpc_dl.probe import FORMAT, bus_factor
from hpc_dl.runs import RunDir, write_json
from hpc_dl.train.env import DistEnv

OPS = ("all_reduce", "all_gather", "reduce_scatter")
# message sizes: 4 KiB .. 4 MiB on CPU workers (gloo), 4 KiB .. 256 MiB on GPUs (nccl), x4 apart
SIZES = {"cpu": [4096 * 4**i for i in range(6)], "cuda": [4096 * 4**i for i in range(9)]}
WARMUP = 2
# the one-tensor collectives under their current names (the older ones warn that they are deprecated)
_ALL_GATHER = getattr(dist, "all_gather_single", dist.all_gather_into_tensor)
_REDUCE_SCATTER = getattr(dist, "reduce_scatter_single", dist.reduce_scatter_tensor)


def group_sizes(world: int) -> list[int]:
    """2, 4, 8, ... below the world size, and the world size itself."""
    return sorted({*(2**i for i in range(1, world.bit_length()) if 2**i < world), world}) if world > 1 else []


def groups(hosts: list[str]) -> list[tuple[str, list[int]]]:
    """(placement, ranks) per group size: the first k ranks node by node ("intra" while they fit on one
    node), and on several nodes also k ranks spread over the nodes in turn ("inter"); no group twice."""
    by_node = [[r for r, h in enumerate(hosts) if h == node] for node in dict.fromkeys(hosts)]
    packed = [r for ranks in by_node for r in ranks]
    spread = [r for col in itertools.zip_longest(*by_node) for r in col if r is not None]
    out, seen = [], set()
    for k in group_sizes(len(hosts)):
        for order in (packed, spread):
            members = tuple(sorted(order[:k]))
            if members not in seen:
                seen.add(members)
                out.append(("intra" if len({hosts[r] for r in members}) == 1 else "inter", list(members)))
    return out


def iterations(size: int) -> int:
    """Timed iterations: more for small messages (latency-bound), at least 3."""
    return max(3, min(20, 2**24 // size))


def collective(op: str, size: int, n: int, group, device: torch.device):
    """A function that runs the collective once on a float32 buffer of about `size` bytes; its exact size."""
    count = max(1, size // 4 // n)  # elements per rank's share
    whole = torch.zeros(count * n, device=device)
    part = torch.zeros(count, device=device)
    if op == "all_reduce":
        return (lambda: dist.all_reduce(whole, group=group)), whole.numel() * 4
    if op == "all_gather":
        return (lambda: _ALL_GATHER(whole, part, group=group)), whole.numel() * 4
    return (lambda: _REDUCE_SCATTER(part, whole, group=group)), whole.numel() * 4


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_one(op: str, size: int, members: list[int], group, device: torch.device) -> tuple[float, int, int]:
    """(slowest rank's seconds per call, exact bytes, iterations) of one collective in one group."""
    run, exact = collective(op, size, len(members), group, device)
    fence = torch.zeros(1, device=device)
    for _ in range(WARMUP):
        run()
    _sync(device)
    dist.all_reduce(fence, group=group)  # start together
    n = iterations(size)
    start = time.perf_counter()
    for _ in range(n):
        run()
    _sync(device)
    took = torch.tensor([(time.perf_counter() - start) / n], dtype=torch.float64, device=device)
    dist.all_reduce(took, op=dist.ReduceOp.MAX, group=group)
    return float(took.item()), exact, n


def measure(env: DistEnv, hosts: list[str], sizes: list[int], log) -> list[dict]:
    """Every group, op and size in turn (one group at a time: none disturbs another's timing)."""
    rows = []
    for placement, members in groups(hosts):
        group = dist.new_group(members)  # every rank creates every group, in the same order
        if env.rank in members:
            for op, size in itertools.product(OPS, sizes):
                seconds, exact, n = time_one(op, size, members, group, env.device)
                algbw = exact / seconds / 1e9
                row = {
                    "op": op,
                    "ranks": len(members),
                    "nodes": len({hosts[r] for r in members}),
                    "placement": placement,
                    "bytes": exact,
                    "time_s": seconds,
                    "algbw_gbps": algbw,
                    "busbw_gbps": algbw * bus_factor(op, len(members)),
                    "iterations": n,
                }
                rows.append(row)
                log(
                    f"{op} {len(members)} ranks {placement}-node {exact} B: {seconds * 1e3:.3f} ms, "
                    f"busbw {row['busbw_gbps']:.3f} GB/s"
                )
        dist.all_reduce(torch.zeros(1, device=env.device))  # the next group starts when this one is done
    return rows


def record(env: DistEnv, hosts: list[str], rows: list[dict], started: float) -> dict:
    return {
        "format": FORMAT,
        "backend": env.backend,
        "device": env.device.type,
        "device_name": env.device_name(),
        "world_size": env.world_size,
        "nodes": len(set(hosts)),
        "hosts": hosts,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "started": started,
        "ended": time.time(),
        "results": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hpc_dl.jobs.probe", description="hpcdl probe worker")
    p.add_argument("--run-dir", type=Path, required=True)
    args = p.parse_args(argv)
    started = time.time()
    env = DistEnv.from_environ()
    env.init_process_group()
    hosts: list[str] = [""] * env.world_size
    dist.all_gather_object(hosts, env.hostname)

    def log(line: str) -> None:
        if env.is_main:
            print(f"probe: {line}", flush=True)

    rows = measure(env, hosts, SIZES[env.device.type], log)
    if env.is_main:
        run = RunDir(args.run_dir.resolve())
        write_json(run.probe, record(env, hosts, rows, started))
        write_json(run.result, {"status": "success", "measurements": len(rows), "world_size": env.world_size})
        log(f"wrote {len(rows)} measurement(s) to {run.probe}")
    env.close()
    env.finish(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
