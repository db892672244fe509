"""The input pipeline (issue 10): in-memory sets batched as tensors on the device, the same batches a
DataLoader gives; DataLoader workers sized for the node; phase timers that do not wait on a GPU."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from hpc_dl.errors import SpecError
from hpc_dl.spec import JobSpec
from hpc_dl.train import loaders
from hpc_dl.train.phases import PhaseClock
from hpc_dl.train.tasks.classification import data

CPU = torch.device("cpu")


def _synthetic(size: int = 12, n: int = 50) -> data.Data:
    return data.load("resnet18", "synthetic", None, size, n, 9, 3)


def _reference_batches(ds, collate, batch_size, sampler=None, drop_last=False):
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=collate, drop_last=drop_last)
    return list(loader)


@pytest.mark.parametrize("drop_last", [False, True])
def test_tensor_loader_gives_the_dataloaders_batches(drop_last):
    ds = _synthetic(size=40)  # resized from 32 to 40 on the way: interpolate runs in both paths
    loader, sampler = loaders.train_loader(ds, 8, 1, 2, 5, CPU, drop_last=drop_last)
    assert isinstance(loader, loaders.TensorLoader)
    sampler.set_epoch(3)
    ours = list(loader)
    ref_sampler = DistributedSampler(ds.train, num_replicas=2, rank=1, shuffle=True, seed=5)
    ref_sampler.set_epoch(3)
    theirs = _reference_batches(ds.train, ds.collate, 8, ref_sampler, drop_last)
    assert len(ours) == len(theirs) == len(loader) == (3 if drop_last else 4)
    for (x, y), (rx, ry) in zip(ours, theirs, strict=True):
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 40, 40)
        torch.testing.assert_close(x, rx, rtol=0, atol=0)
        assert torch.equal(y, ry)


def test_tensor_loader_over_a_subset_and_the_test_shard():
    ds = data.load("mnist-cnn", "digits", None, None, 30, 11, 0)  # _first() wraps both in a Subset
    test = loaders.test_loader(ds, 4, 1, 2, CPU)
    theirs = _reference_batches(Subset(ds.test, range(1, 11, 2)), ds.collate, 4)
    ours = list(test)
    assert [len(y) for _, y in ours] == [4, 1]
    for (x, y), (rx, ry) in zip(ours, theirs, strict=True):
        torch.testing.assert_close(x, rx, rtol=0, atol=0)
        assert torch.equal(y, ry)
    assert loaders.describe(test) == {"loader": "tensors on the device", "loader_workers": 0}


def test_a_set_without_a_batcher_goes_through_a_dataloader():
    ds = _synthetic()
    plain = data.Data(ds.train, ds.test, 10, 3, 12, collate=None)
    loader, _ = loaders.train_loader(plain, 8, 0, 1, 0, CPU, workers=0)
    assert isinstance(loader, DataLoader)
    assert loaders.describe(loader) == {"loader": "DataLoader", "loader_workers": 0, "pin_memory": False}


@pytest.mark.parametrize(
    ("device", "threads", "expected"), [("cpu", "4", 0), ("cuda", "1", 1), ("cuda", "4", 3), ("cuda", "32", 8)]
)
def test_auto_workers(monkeypatch, device, threads, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    assert loaders.auto_workers(torch.device(device)) == expected


def test_loader_workers_is_validated():
    with pytest.raises(SpecError) as err:
        JobSpec(loader_workers=-1).validate()
    assert str(err.value) == "invalid loader-workers: -1 (must be an integer >= 0)"
    JobSpec(loader_workers=0).validate()


class _FakeEvent:
    """A CUDA event stand-in: record() stamps the next tick of a shared clock (ms)."""

    ticks = iter(range(0, 10_000, 5))

    def record(self):
        self.t = next(self.ticks)

    def elapsed_time(self, other) -> float:
        return float(other.t - self.t)


def test_gpu_phase_timers_are_read_once_not_per_step():
    clock = PhaseClock(torch.device("cuda"), event=_FakeEvent)
    phases = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    for _ in range(3):
        clock.step(phases, tuple(clock.mark() for _ in range(4)))
    assert phases == {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}  # nothing read in the loop
    clock.settle(phases)
    assert phases == {"forward": 0.015, "backward": 0.015, "optimizer": 0.015}  # 3 steps x 5 ms each
    assert clock.pending == []


def test_cpu_phase_timers_add_up_as_they_go():
    clock = PhaseClock(CPU)
    phases = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    clock.step(phases, (1.0, 1.5, 3.5, 3.75))
    assert phases == {"forward": 0.5, "backward": 2.0, "optimizer": 0.25}
