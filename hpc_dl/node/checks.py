"""What `hpcdl doctor` checks on a compute node, after the profile's set-up lines ran: one JSON line per
check ({"check", "ok", "detail", "fix"}). Run as `python -m hpc_dl.node.checks --expect-gpus N`.

Every check catches its own failure, so one missing piece never hides the others.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys


def _python(_gpus: int) -> tuple[bool, str, str]:
    ok = sys.version_info >= (3, 10)
    return ok, f"{platform.python_version()} at {sys.executable}", "hpcdl needs Python >= 3.10"


def _torch(_gpus: int) -> tuple[bool, str, str]:
    import torch
    import torchvision

    return True, f"torch {torch.__version__}, torchvision {torchvision.__version__}", ""


def _cuda(gpus: int) -> tuple[bool, str, str]:
    import torch

    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    names = ", ".join(sorted({torch.cuda.get_device_name(i) for i in range(found)}))
    detail = f"{found} GPU(s) visible{': ' + names if names else ''} (CUDA build {torch.version.cuda})"
    fix = f"the partition promises {gpus} GPU(s): load the CUDA module, or use a CUDA build of torch"
    return found >= gpus, detail, fix


def _collectives(gpus: int) -> tuple[bool, str, str]:
    import torch
    import torch.distributed as dist

    have = [n for n, ok in (("gloo", dist.is_gloo_available()), ("nccl", dist.is_nccl_available())) if ok]
    nccl = ".".join(map(str, torch.cuda.nccl.version())) if gpus and "nccl" in have else None
    detail = ", ".join(have) + (f" (NCCL {nccl})" if nccl else "")
    return "gloo" in have and (gpus == 0 or "nccl" in have), detail, "use a torch build with gloo and NCCL"


MPI_FIX = "load the MPI module (OpenMPI), then pip install mpi4py against it"


def _mpi(_gpus: int) -> tuple[bool, str, str]:
    mpirun = shutil.which("mpirun")
    from mpi4py import MPI

    version = MPI.Get_library_version().replace("\0", "").splitlines()[0].split(",")[0].strip()
    return mpirun is not None, f"mpirun {mpirun or 'not on PATH'}; mpi4py with {version}", MPI_FIX


def _horovod(_gpus: int) -> tuple[bool, str, str]:
    import horovod.torch as hvd

    built = [n for n, ok in (("mpi", hvd.mpi_built()), ("gloo", hvd.gloo_built()), ("nccl", hvd.nccl_built())) if ok]
    return True, f"horovod {__import__('horovod').__version__} built with {', '.join(built)}", ""


CHECKS = {
    "python": (_python, ""),
    "torch": (_torch, "install torch and torchvision in the job's environment (pip install torch torchvision)"),
    "cuda": (_cuda, ""),
    "collectives": (_collectives, ""),
    "mpi": (_mpi, MPI_FIX),
    "horovod": (_horovod, "build Horovod against this torch (make horovod)"),
}


def run(expect_gpus: int) -> list[dict]:
    rows = []
    for name, (check, fix_on_error) in CHECKS.items():
        try:
            ok, detail, fix = check(expect_gpus)
        except Exception as exc:  # an import that fails is the finding, not a crash
            ok, detail, fix = False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}", fix_on_error
        rows.append({"check": name, "ok": ok, "detail": detail, "fix": "" if ok else fix})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hpc_dl.node.checks")
    p.add_argument("--expect-gpus", type=int, default=0)
    args = p.parse_args(argv)
    for row in run(args.expect_gpus):
        print("HPCDL-CHECK " + json.dumps(row, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
