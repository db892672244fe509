"""Your own model and data set on the compute node, as a classification task: `package.module:function`,
imported and called by the contract in hpc_dl/byo.py (the login node's checks). Every failure is one
UserCodeError line, which the rank log, run_stop and `hpcdl status`/triage show.
"""

from __future__ import annotations

import importlib
import inspect

from torch import nn
from torch.utils.data import Dataset

from .... import catalog
from ....byo import PARAMETERS, is_ref, split
from ... import models
from . import data as d


class UserCodeError(RuntimeError):
    """Your model or data set function could not be imported, or broke the contract; one line."""


def resolve(kind: str, ref: str):
    """The function `ref` names, imported here (on the node)."""
    module, function = split(ref)
    try:
        mod = importlib.import_module(module)
    except Exception as exc:
        raise UserCodeError(f"invalid {kind} {ref!r}: importing {module} failed: {type(exc).__name__}: {exc}") from exc
    fn = getattr(mod, function, None)
    if not callable(fn):
        raise UserCodeError(f"invalid {kind} {ref!r}: module {module!r} has no function {function!r}")
    return fn


def call(kind: str, ref: str, **values):
    """Call the function with the contract's parameters it declares (all of them if it takes **kwargs)."""
    fn = resolve(kind, ref)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    given = {k: v for k, v in values.items() if v is not None and k in PARAMETERS[kind] and (takes_all or k in params)}
    try:
        return fn(**given)
    except UserCodeError:
        raise
    except TypeError as exc:
        raise UserCodeError(f"invalid {kind} {ref!r}: calling it with {sorted(given)} failed: {exc}") from exc


def build_model(ref: str, num_classes: int, channels: int | None, image_size: int | None) -> nn.Module:
    """Your model: an nn.Module that maps (N, channels, size, size) images to (N, num_classes) logits."""
    model = call("model", ref, num_classes=num_classes, channels=channels, image_size=image_size)
    if not isinstance(model, nn.Module):
        raise UserCodeError(f"invalid model {ref!r}: returned {type(model).__name__}, not a torch nn.Module")
    return model


def load_data(ref: str, root: str | None, image_size: int | None, channels: int | None, seed: int):
    """Your data set: (train, test, num_classes), each item an (image tensor (C, H, W), int label)."""
    out = call("dataset", ref, root=root, image_size=image_size, channels=channels, seed=seed)
    if not (isinstance(out, tuple) and len(out) == 3):
        raise UserCodeError(f"invalid dataset {ref!r}: returned {type(out).__name__}, not (train, test, num_classes)")
    train, test, classes = out
    for name, ds in (("train", train), ("test", test)):
        if not isinstance(ds, Dataset) and not hasattr(ds, "__getitem__"):
            raise UserCodeError(f"invalid dataset {ref!r}: its {name} set is a {type(ds).__name__}, not a Dataset")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise UserCodeError(f"invalid dataset {ref!r}: num_classes is {classes!r}, not an integer >= 1")
    return train, test, classes


def shape(ds) -> tuple[int, int]:
    """(channels, side) of a data set's first image, which a model needs to be built for it."""
    try:
        image = ds[0][0]
        return int(image.shape[0]), int(image.shape[-1])
    except Exception as exc:
        raise UserCodeError(
            f"invalid data set: its first item is not an (image tensor (C, H, W), label): {exc}"
        ) from exc


def load(model: str, dataset: str, data_root, image_size, train_samples, test_samples, seed: int):
    """data.load where the model or the data set is yours: the data as `Data`, shaped by the catalog's
    side (a catalog model's channels and size for your data; a catalog data set's native channels and
    size, or --image-size, for your model)."""
    minfo = catalog.MODELS.get(model)
    if is_ref(dataset):
        size = image_size or (minfo.min_size if minfo else None)
        train, test, classes = load_data(dataset, data_root, size, minfo.channels if minfo else None, seed)
        train, test = d.first(train, train_samples), d.first(test, test_samples)
    else:
        info = catalog.DATASETS[dataset]
        size, ch = image_size or info.size, minfo.channels if minfo else info.channels
        train, test, classes = d.read(d.Request(dataset, data_root, size, ch, train_samples, test_samples, seed))
        collate = d.batcher(dataset, size, ch)  # the in-memory sets are shaped per batch
        if collate is not None:
            return d.Data(train=train, test=test, num_classes=classes, channels=ch, image_size=size, collate=collate)
    channels, side = shape(train)
    return d.Data(train=train, test=test, num_classes=classes, channels=channels, image_size=side)


def model(name: str, num_classes: int, channels: int | None = None, image_size: int | None = None) -> nn.Module:
    """A catalog model (train/models.py), or yours (`package.module:function`) for images of that shape."""
    if is_ref(name):
        return build_model(name, num_classes, channels, image_size)
    return models.build(name, num_classes, channels, image_size)
