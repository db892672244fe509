"""Report your own script's numbers to hpcdl: `from hpc_dl import report`.

    report.start(model="mynet", dataset="mydata", batch_size=64)   # optional: what the run is
    for epoch in range(epochs):
        ...                                                        # your training
        report.epoch(samples=n, seconds=t, loss=l, accuracy=a)     # THIS rank's numbers for the epoch
    report.done(test_accuracy=acc)                                 # optional: at exit it is done for you

Under `hpcdl submit --script`, every rank writes the events hpcdl's own training writes (run_start,
epoch_stop, run_stop in events/rank-R.jsonl, through hpc_dl.events) and rank 0 writes result.json, so
`hpcdl collect` turns them into the scaling table. `epoch()` is collective: every rank calls it once per
epoch; the ranks' numbers are combined through the process group your script already has
(torch.distributed, mpi4py or Horovod): samples summed, the slowest rank's seconds, loss and accuracy
averaged by samples. With no process group each rank's numbers stay its own (`combined: false`).
At exit, a script that did not call done() gets it (status failed after an uncaught exception or a
sys.exit(non-zero)), and a torch.distributed group the script left open is left cleanly (barrier,
destroy_process_group). How the run ended is judged from every rank's run_stop: a rank that dies after
recording success (an abort at interpreter exit) leaves the run COMPLETED, with a note in exit.json.
Outside hpcdl ($HPCDL_RUN_DIR unset) every call does nothing, so the script runs anywhere.
Cheap: torch is only touched when the script already imported it.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

_RANK_VARS = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
_SIZE_VARS = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
_state: dict[str, Any] = {}


def _env_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return default


def _events():
    """This rank's events writer, opened on first use; None outside hpcdl."""
    if "events" not in _state:
        run_dir = os.environ.get("HPCDL_RUN_DIR")
        if not run_dir:
            _state["events"] = None
            return None
        from ..events import Events
        from ..runs import RunDir, read_json

        run = RunDir(Path(run_dir).resolve())
        _state.update(
            events=Events(run, _env_int(_RANK_VARS, 0)),
            spec=read_json(run.spec) or {},
            t0=time.time(),
            history=[],
            failed=None,
        )
        atexit.register(_at_exit)
        _chain_excepthook()
        _chain_exit()
    return _state["events"]


def start(**info: Any) -> None:
    """run_start, with what the run is (model, dataset, batch_size, device, ...: anything JSON)."""
    ev = _events()
    if ev is None or _state.get("started"):
        return
    _state["started"] = True
    spec, world = _state["spec"], _env_int(_SIZE_VARS, 1)
    script = Path(spec.get("script") or sys.argv[0]).name
    record = {
        "strategy": spec.get("strategy"),
        "world_size": world,
        "local_rank": _env_int(("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"), 0),
        "hostname": socket.gethostname(),
        "script": script,
        "model": script,
        "dataset": "-",
        "device": _device(),
        "launcher": os.environ.get("HPCDL_LAUNCHER"),
        **info,
    }
    if isinstance(record.get("batch_size"), int):
        record.setdefault("global_batch_size", record["batch_size"] * world)
    ev.emit("run_start", **record)
    ev.log.info("start: %s under %s, %d worker(s)", script, record["strategy"], world)


def epoch(samples: int, seconds: float, loss: float | None = None, accuracy: float | None = None, **extra) -> dict:
    """One epoch: this rank's samples and seconds (and its mean loss and accuracy). Collective."""
    ev = _events()
    if ev is None:
        return {}
    start()
    n = len(_state["history"]) + 1
    weighted = [float(samples), (loss or 0.0) * samples, (accuracy or 0.0) * samples]
    total, combined = _all_reduce(weighted, "sum")
    (slowest,), _ = _all_reduce([float(seconds)], "max")
    record = {
        "epoch": n,
        "time(s)": slowest,
        "rank_time(s)": float(seconds),
        "samples": int(total[0]),
        "rank_samples": int(samples),
        "throughput(samples/s)": total[0] / slowest if slowest > 0 else None,
        "loss": total[1] / total[0] if loss is not None and total[0] else None,
        "accuracy": total[2] / total[0] if accuracy is not None and total[0] else None,
        "combined": combined,
        **extra,
    }
    _state["history"].append(record)
    ev.emit("epoch_stop", **record)
    ev.log.info("epoch %d: %.2f s, %.1f samples/s", n, slowest, record["throughput(samples/s)"] or 0)
    return record


def done(status: str = "success", test_accuracy: float | None = None, **extra: Any) -> None:
    """run_stop, and rank 0's result.json (called at exit when the script does not)."""
    ev = _events()
    if ev is None or _state.get("done"):
        return
    start()
    _state["done"] = True
    elapsed = time.time() - _state["t0"]
    ev.emit("run_stop", status=status, **{"time(s)": elapsed}, **extra)
    history = _state["history"]
    ev.write_result(
        {
            "status": status,
            "strategy": _state["spec"].get("strategy"),
            "world_size": _env_int(_SIZE_VARS, 1),
            "epochs": len(history),
            "time(s)": elapsed,
            "test_accuracy": test_accuracy,
            "throughput(samples/s)": [h["throughput(samples/s)"] for h in history],
            **extra,
        }
    )
    ev.log.info("done (%s) in %.2f s", status, elapsed)
    ev.close()


def _at_exit() -> None:
    failed = _state.get("failed")
    if failed:
        done("failed", error=failed)
    else:
        done()
        _leave_process_group()


def _leave_process_group() -> None:
    """After a success, leave the script's torch.distributed group the way hpcdl's own workers do (a
    barrier, then destroy_process_group), so that its threads do not race the interpreter's exit (that
    race aborts a finished rank). A script that destroyed its group itself is left alone."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    try:
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()
    except Exception as exc:  # a peer already gone: its own end record tells
        print(f"hpcdl.report: could not leave the process group at exit: {exc}", file=sys.stderr)


def _chain_excepthook() -> None:
    previous = sys.excepthook

    def hook(kind, value, tb):
        _state["failed"] = f"{kind.__name__}: {value}"[:500]
        previous(kind, value, tb)

    sys.excepthook = hook


def _chain_exit() -> None:
    """sys.exit(non-zero) is a failure: the at-exit record must not call it a success."""
    previous = sys.exit

    def exit(code=None):
        if code not in (None, 0):
            _state["failed"] = f"sys.exit({code!r})"[:500]
        previous(code)

    sys.exit = exit


def _device() -> str:
    torch = sys.modules.get("torch")
    return "cuda" if torch is not None and torch.cuda.is_available() else "cpu"


def _all_reduce(values: list[float], op: str) -> tuple[list[float], bool]:
    """Values combined over the ranks through the script's own process group, and whether they were."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        import torch

        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return t.cpu().tolist(), True
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        reduce_op = mpi.SUM if op == "sum" else mpi.MAX
        return [mpi.COMM_WORLD.allreduce(v, op=reduce_op) for v in values], True
    hvd = sys.modules.get("horovod.torch")
    if hvd is not None and hvd.is_initialized():
        import torch

        out = hvd.allreduce(torch.tensor(values, dtype=torch.float64), op=hvd.Sum if op == "sum" else hvd.Max)
        return out.tolist(), True
    return values, _env_int(_SIZE_VARS, 1) == 1
