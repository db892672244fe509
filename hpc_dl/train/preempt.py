"""Stopping mid-epoch and resuming exactly: the preemption flag and the random-number state.

A worker that gets SIGTERM (SLURM preempting or requeueing the job, `hpcdl cancel`) does not die at
once: it sets a flag that the loop reads every CHECK_EVERY steps (with the stop request), and the ranks
agree to save a step checkpoint and stop. A resumed epoch replays the same batches in the same order:
the random state at the epoch's start is restored before its data iterator is made, the batches already
trained are skipped, then the random state at the stop is restored.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time

import numpy as np
import torch

CHECK_EVERY = max(1, int(os.environ.get("HPCDL_STOP_CHECK_STEPS", "10")))  # steps between two stop checks
_PREEMPTED = threading.Event()
HOLD_ENV = "HPCDL_TEST_HOLD_AFTER_EPOCH"  # tests only: see stop_at_epoch_end
HOLD_STEP_ENV = "HPCDL_TEST_HOLD_AT_STEP"  # tests only, EPOCH:STEP (a stop-check step): see stop_at_step


def stop_at_epoch_end(epoch: int, stop_requested) -> bool:
    """Whether the ranks stop after this epoch (more follow): `stop_requested()`, asked of all ranks. With
    $HPCDL_TEST_HOLD_AFTER_EPOCH = this epoch, they wait here until a stop is requested, so a test can warn
    a run at a known point however fast the machine is (a test that raced an epoch's end was flaky)."""
    if os.environ.get(HOLD_ENV) != str(epoch):
        return stop_requested()
    while not stop_requested():
        time.sleep(0.2)
    return True


def stop_at_step(epoch: int, step: int, stop_requested) -> bool:
    """Whether the ranks stop at this step of the epoch (they check every CHECK_EVERY steps). With
    $HPCDL_TEST_HOLD_AT_STEP = EPOCH:STEP of this one, they wait here until a stop is requested, so a test
    can stop a run in the middle of an epoch however fast the machine is."""
    if os.environ.get(HOLD_STEP_ENV) != f"{epoch}:{step}":
        return stop_requested()
    while not stop_requested():
        time.sleep(0.2)
    return True


def install() -> None:
    """Catch SIGTERM in this worker (main thread only): the loop checkpoints and stops at its next check."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda _signum, _frame: _PREEMPTED.set())


def preempted() -> bool:
    return _PREEMPTED.is_set()


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def new_accumulators() -> dict:
    """An epoch's running sums on this rank; a step checkpoint saves them, so a resumed epoch's loss,
    accuracy and time are those of the whole epoch."""
    return {
        "loss": 0.0,
        "correct": 0,
        "samples": 0,
        "data": 0.0,
        "elapsed": 0.0,
        "phases": {"forward": 0.0, "backward": 0.0, "optimizer": 0.0},
    }


def stop_reason(path) -> str:
    """Why the wrapper asked the ranks to stop (stop.json's reason)."""
    try:
        return json.loads(path.read_text()).get("reason", "unknown")
    except (OSError, ValueError):
        return "unknown"


def gather_ranks(env, mine: dict) -> list[dict]:
    """Every rank's running sums and random state, for rank 0's step checkpoint. Under a torch process
    group each rank's own; under another launcher's (MPI) the sums are combined into rank 0's, and the
    other ranks resume from zero (the epoch's totals are right; their random state is rank 0's)."""
    import torch.distributed as dist

    if env.world_size == 1:
        return [mine]
    if dist.is_available() and dist.is_initialized():
        out: list = [None] * env.world_size
        dist.all_gather_object(out, mine)
        return out
    acc = mine["acc"]
    loss, correct, samples = env.all_reduce([acc["loss"], acc["correct"], acc["samples"]])
    return [{**mine, "acc": {**acc, "loss": loss, "correct": int(correct), "samples": int(samples)}}]


def for_rank(partial: dict, rank: int) -> dict:
    """This rank's part of a step checkpoint (see gather_ranks)."""
    ranks = partial["ranks"]
    if rank < len(ranks):
        return ranks[rank]
    fresh = {**new_accumulators(), "elapsed": ranks[0]["acc"]["elapsed"]}
    return {**ranks[0], "acc": fresh}
