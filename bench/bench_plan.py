"""hpcdl plan, checked: a worked example on this machine and a check against Horovod's published benchmark.

    .venv/bin/python bench/bench_plan.py --paper        # the paper check only (no training, instant)
    .venv/bin/python bench/bench_plan.py                # + the worked example (test SLURM if it answers, else local)

1. Paper check: Horovod's docs (docs/benchmarks.rst) report, on 128 servers x 4 Pascal GPUs with a 25 Gbit/s
   RoCE network, 90 % scaling efficiency at 512 GPUs for ResNet-101 and 68 % for VGG-16. From one GPU's
   throughput (TensorFlow's published P100 figures, batch 64) and the models' gradient bytes, plan predicts
   the 512-GPU efficiency of each with the network given as 3.125 GB/s bus bandwidth (25 Gbit/s).
2. Worked example: measure 1 and 2 CPU workers (ddp, mnist-cnn), probe the allocation, plan 3 and 4
   workers, then measure 3 and 4 and print the error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent

# model: (published 512-GPU efficiency, parameters, one P100's images/s at batch 64)
HOROVOD_512 = {
    # ResNet-101 is not in TensorFlow's P100 table: interpolated by FLOPs between ResNet-50 (219 images/s,
    # 4.1 GFLOPs) and ResNet-152 (91.8 images/s, 11.6 GFLOPs) at ResNet-101's 7.8 GFLOPs
    "resnet101": (0.90, 44_549_160, 130.0),
    "vgg16": (0.68, 138_357_544, 154.0),
}
PAPER_BUSBW_GBPS = 25 / 8  # 25 Gbit/s RoCE per server: the ring's inter-node link


def paper_plan():
    """plan's 512-GPU (128 nodes x 4) prediction for each model: horovod, fp32 gradients, batch 64 per GPU."""
    import pandas as pd
    from hpc_dl.analysis import network, plan

    net = network.Network.uniform(PAPER_BUSBW_GBPS, 0.0, "Horovod's 25 Gbit/s RoCE")
    out = []
    for model, (_, params, one_gpu) in HOROVOD_512.items():
        row = {"strategy": "horovod", "variant": "-", "model": model, "dataset": "imagenet", "batch_size": 64}
        row.update(precision="fp32", device="cuda", run=model, workers=1, nodes=1, global_batch_size=64)
        row.update(throughput=one_gpu, samples=64 * 100, forward_s=None, backward_s=None, optimizer_s=None)
        row.update(gradient_bytes=4 * params, parameter_bytes=4 * params, parameters=params)
        out.append(plan.plan_group(pd.DataFrame([row]), net, [(512, 128)]))
    return pd.concat(out, ignore_index=True)


def paper() -> None:
    table = paper_plan()
    print("## Paper check: Horovod, 512 GPUs (128 x 4 P100), 25 Gbit/s RoCE\n")
    print("| model | gradients (MB) | 1 GPU (images/s) | predicted efficiency | published | step (ms) | exposed (ms) |")
    print("|---|---|---|---|---|---|---|")
    for r in table.itertuples():
        published, params, one = HOROVOD_512[r.model]
        print(
            f"| {r.model} | {4 * params / 1e6:.0f} | {one:g} | {r.efficiency:.3f} | {published:.2f} | "
            f"{r.step_s * 1e3:.0f} | {r.communication_s * 1e3:.0f} |"
        )
    order = list(table.sort_values("efficiency", ascending=False)["model"])
    print(f"\nplan's order: {' > '.join(order)}; published: resnet101 (0.90) > vgg16 (0.68)\n")


STUDY = [
    "--strategy",
    "ddp",
    "--device",
    "cpu",
    "--model",
    "mnist-cnn",
    "--train-samples",
    "4096",
    "--test-samples",
    "128",
    "--batch-size",
    "256",
    "--epochs",
    "3",
    "--time",
    "10",
    "--throttle",
    "1",
    "--wait",
]


def hpcdl(*args: str, env: dict) -> str:
    out = subprocess.run([str(BIN / "hpcdl"), *args], capture_output=True, text=True, env=env, cwd=env["HPCDL_RUNS"])
    if out.returncode != 0:
        raise SystemExit(f"hpcdl {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def worked_example() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hpcdl-bench-plan-"))
    env = dict(os.environ, HPCDL_RUNS=str(tmp))
    slurm = (
        shutil.which("sinfo")
        and subprocess.run(
            ["sinfo", "-h"],
            capture_output=True,
            env={**env, "SLURM_CONF": env.get("SLURM_CONF", "/var/tmp/hpcdl-slurm/etc/slurm.conf")},
        ).returncode
        == 0
    )
    if slurm:
        env.update(
            SLURM_CONF=env.get("SLURM_CONF", "/var/tmp/hpcdl-slurm/etc/slurm.conf"),
            HPCDL_PROFILES=str(REPO / "tests" / "cluster" / "profiles"),
        )
    profile = "testcluster" if slurm else "local"
    load = os.getloadavg()
    hpcdl("sweep", "--profile", profile, "--study", "small", "--gpus", "1,2", "--out", str(tmp / "r1"), *STUDY, env=env)
    hpcdl("probe", "--profile", profile, "--gpus", "4", "--study", "small", env=env)
    planned = json.loads(hpcdl("plan", "small", "--workers", "3,4", "--json", env=env))
    hpcdl("sweep", "--profile", profile, "--study", "big", "--gpus", "3,4", "--out", str(tmp / "r2"), *STUDY, env=env)
    check = json.loads(hpcdl("plan", "big", "--json", "--probe", str(tmp / "small"), env=env))
    measured = {r["workers"]: r for r in check["plan"] if r["measured"] == r["measured"]}
    print(f"## Worked example: profile {profile}, 1 and 2 CPU workers measured, 3 and 4 predicted, then measured")
    print(
        f"(load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; after: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; runs in {tmp})\n"
    )
    print("| workers | predicted samples/s | 95% interval | measured | less CPU wait | error | error vs measured |")
    print("|---|---|---|---|---|---|---|")
    for r in planned["plan"]:
        if r["workers"] in (1, 2):
            print(f"| {r['workers']} | (measured) | | {r['measured_raw']:.0f} | {r['measured']:.0f} | | |")
        elif r["workers"] in measured:
            m = measured[r["workers"]]
            print(
                f"| {r['workers']} | {r['throughput']:.0f} | {r['throughput_low']:.0f}-{r['throughput_high']:.0f} | "
                f"{m['measured_raw']:.0f} | {m['measured']:.0f} | {r['throughput'] / m['measured'] - 1:+.1%} | "
                f"{r['throughput'] / m['measured_raw'] - 1:+.1%} |"
            )
    kappa = [r["kappa"] for r in planned["plan"] if r.get("kappa") is not None]
    print(f"\nkappa (fitted on 1 and 2 workers): {kappa[0]:.3g}" if kappa else "\nkappa: 1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--paper", action="store_true", help="only the paper check")
    args = ap.parse_args()
    paper()
    if not args.paper:
        worked_example()


if __name__ == "__main__":
    main()
