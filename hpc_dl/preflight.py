"""Checks a submission makes on the login node before anything is written: what the job needs is there.

Each failure is one line saying what to do; things the login node cannot see come back as warnings.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import catalog, strategies
from .errors import MissingDependency, SpecError
from .profiles import ClusterProfile
from .spec import JobSpec


def preflight(spec: JobSpec, profile: ClusterProfile) -> list[str]:
    """Every check; raises on the first failure, returns the warnings."""
    from .byo import check

    check(spec, profile)  # your model, data set or script (found; parsed, never imported here)
    check_requirements(spec, profile)
    return check_data_root(spec, profile)


def check_requirements(spec: JobSpec, profile: ClusterProfile) -> None:
    """A strategy's module or program, where the job will use ours: one line saying how to install it."""
    import importlib.util
    import shutil
    import sys

    strategy = strategies.get(spec.strategy)
    if profile.python is not None:  # the job runs the site's python (modules, conda): its environment, not ours
        return
    if strategy.needs_module:
        top = strategy.needs_module.split(".")[0]
        try:
            found = importlib.util.find_spec(strategy.needs_module) is not None
        except ImportError:
            found = False
        if not found:
            raise MissingDependency(
                f"strategy {spec.strategy!r} needs {top}, which is not installed in {sys.prefix}: "
                f"{strategy.install_hint}"
            )
    if profile.backend.on_this_machine and strategy.needs_program:  # the launcher runs here
        path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        if shutil.which(strategy.needs_program, path=path) is None:
            raise MissingDependency(
                f"strategy {spec.strategy!r} needs {strategy.needs_program}, which is not on PATH: "
                f"{strategy.install_hint}"
            )


def check_data_root(spec: JobSpec, profile: ClusterProfile) -> list[str]:
    """--data-root where this machine can see it: missing or (imagefolder) without class folders is
    refused; on a cluster whose file system is not mounted here, a warning (the job will tell)."""
    if spec.data_root is None:
        return _generated_on_node(spec, profile)
    root = Path(spec.data_root).expanduser()
    if not root.exists():
        top = Path(*root.absolute().parts[:2])  # /scratch, /home, /work: is that file system here at all?
        if not profile.backend.on_this_machine and not top.exists():
            return [
                f"--data-root {spec.data_root} is not visible from this machine ({top} is not mounted here); "
                "the job will check it on the node"
            ]
        raise SpecError(f"invalid data root: {spec.data_root} does not exist")
    info = catalog.DATASETS.get(spec.dataset)
    if not root.is_dir() and not (info is not None and info.root_file and root.is_file()):
        raise SpecError(f"invalid data root: {spec.data_root} is not a folder")
    if spec.dataset == "imagefolder":
        base = root / "train" if (root / "train").is_dir() else root
        if not any(p.is_dir() and not p.name.startswith(".") for p in base.iterdir()):
            raise SpecError(
                f"invalid data root: {base} has no class folders (imagefolder wants <root>/<class>/<image> "
                "or <root>/train/<class>/<image>)"
            )
    return []


def _generated_on_node(spec: JobSpec, profile: ClusterProfile) -> list[str]:
    """A data set the job generates on a cluster node (coco without --data-root): the login node cannot
    tell whether the node may write the data cache, so it says where, and how to avoid it."""
    info = catalog.DATASETS.get(spec.dataset)
    if profile.backend.on_this_machine or info is None or not info.generated:
        return []
    return [
        f"--dataset {spec.dataset} without --data-root: the job generates it on the node, in the data cache there "
        "($HPCDL_DATA_CACHE, else ~/.cache/hpcdl/datasets), which must be writable; or make it here "
        f"(python -m {info.generated} --out DIR) and pass --data-root DIR"
    ]
