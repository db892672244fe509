"""One fold of K-fold cross-validation (seed 004). `hpcdl kfold` submits every fold x model x scheduler as
one job array; collect reports each model's mean +- std accuracy and the wall time against running the
folds one after another.

This run trains on the training set minus fold k (scikit-learn's KFold, shuffled with the seed) and
evaluates on fold k; its eval events are that held-out accuracy.
"""

from __future__ import annotations

from sklearn.model_selection import KFold
from torch.utils.data import Subset

from hpc_dl.train.data import Data
from hpc_dl.train.entry import Job, run_job
from hpc_dl.train.setup import load_data, setup


def body(job: Job) -> None:
    cfg = job.cfg
    ds = load_data(cfg)
    splits = list(KFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed).split(range(len(ds.train))))
    keep, held_out = splits[cfg.fold]
    folded = Data(
        Subset(ds.train, keep.tolist()),
        Subset(ds.train, held_out.tolist()),
        ds.num_classes,
        ds.channels,
        ds.image_size,
        collate=ds.collate,
    )
    s = setup(cfg, job.env, ds=folded)  # trains on the other folds, evaluates on fold k
    info = {"fold": cfg.fold, "folds": cfg.folds, "scheduler": cfg.scheduler or "none", "held_out": len(held_out)}
    job.train(s, info=info)


def main(argv: list[str] | None = None) -> int:
    return run_job("kfold", argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
