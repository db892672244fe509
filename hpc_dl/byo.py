"""Bring your own model, data set or training script: the login-node checks, without running your code.

The contract (also in docs/byo.md, "Bring your own model, data or script"):

- `--model package.module:function`: `function(num_classes: int, channels: int, image_size: int)` returns
  an `nn.Module` that takes a batch of images (N, channels, image_size, image_size) and returns logits
  (N, num_classes). `channels` and `image_size` are optional parameters: hpcdl passes those the
  function declares. A class (an `nn.Module` subclass) works the same way through its `__init__`.
- `--dataset package.module:function`: `function(root: str | None, image_size: int | None, channels:
  int | None, seed: int)` returns `(train, test, num_classes)`: two torch Datasets of (image tensor
  (C, H, W), int label) and the number of classes. Every parameter is optional; hpcdl passes those the
  function declares (`root` is --data-root; `image_size` and `channels` are what a catalog model wants,
  or None). --train-samples/--test-samples cut the data sets as for the catalog's.
- `--script train.py [-- ARGS]`: your own script, started by the strategy's launcher; it reports its
  numbers with `hpc_dl.report` (see that module).

The module must be importable on the compute node: installed, on PYTHONPATH, or under a folder in the
profile's `pythonpath`. Here it is only found and its source parsed (`ast`): your imports (torch) are
not run on the login node.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import os
import re
import sys
from pathlib import Path

from .errors import SpecError

REF = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
# the parameters hpcdl passes, by keyword, to a user's function (those it declares)
PARAMETERS = {"model": ("num_classes", "channels", "image_size"), "dataset": ("root", "image_size", "channels", "seed")}
REQUIRED = {"model": ("num_classes",), "dataset": ()}


def is_ref(name: str) -> bool:
    """Whether a --model/--dataset value is `package.module:function` rather than a catalog name."""
    return isinstance(name, str) and REF.fullmatch(name) is not None


def split(ref: str) -> tuple[str, str]:
    module, _, function = ref.partition(":")
    return module, function


def search_path(pythonpath: tuple[str, ...] = ()) -> list[str]:
    """Where the job's python looks: the profile's pythonpath, $PYTHONPATH, then this interpreter's path."""
    env = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [str(Path(p).expanduser()) for p in pythonpath] + env + [p for p in sys.path if p]


def find_module(module: str, path: list[str]):
    """The module's spec, found part by part WITHOUT importing a parent package (so its code is not run)."""
    locations: list[str] | None = path
    spec = None
    parts = module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        spec = importlib.machinery.PathFinder.find_spec(name, locations)
        if spec is None and i == 0:  # an installed package behind a meta-path finder (editable installs)
            spec = importlib.util.find_spec(name)  # a top-level name: found, not imported
        if spec is None:
            return None
        locations = list(spec.submodule_search_locations or [])
    return spec


def check_ref(kind: str, ref: str, pythonpath: tuple[str, ...] = ()) -> None:
    """The module is found and defines the function with parameters hpcdl can pass; else one line."""
    module, function = split(ref)
    path = search_path(pythonpath)
    spec = find_module(module, path)
    what = f"invalid {kind} {ref!r}"
    if spec is None:
        own = list(dict.fromkeys(path[: len(path) - len([p for p in sys.path if p])]))  # yours, not python's
        raise SpecError(
            f"{what}: module {module!r} not found (on PYTHONPATH: {os.pathsep.join(own) or 'nothing'}; "
            "add its folder to PYTHONPATH or to the profile's pythonpath)"
        )
    if not spec.origin or not spec.origin.endswith(".py"):
        return  # compiled or namespace: nothing to parse here; the job checks it
    try:
        tree = ast.parse(Path(spec.origin).read_text(errors="replace"), spec.origin)
    except (OSError, SyntaxError) as exc:
        raise SpecError(f"{what}: cannot parse {spec.origin}: {exc}") from None
    node = _definition(tree, function)
    if node is None:
        raise SpecError(f"{what}: module {module!r} ({spec.origin}) defines no {function!r}")
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        problem = _signature_problem(kind, node)
        if problem:
            raise SpecError(f"{what}: {problem}")


def _definition(tree: ast.Module, name: str):
    """The top-level def/class of that name; True for a name bound another way (import, assignment)."""
    found = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            found = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                found = True
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                found = True
    return found


def _signature_problem(kind: str, node) -> str | None:
    """Why hpcdl cannot call this function (or class) by the contract, or None."""
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is None:
            return None  # inherited: not checked here
        args, label = init.args, f"{node.name}.__init__"
        positional = (args.posonlyargs + args.args)[1:]  # without self
    else:
        args, label = node.args, node.name
        positional = args.posonlyargs + args.args
    allowed, needed = PARAMETERS[kind], REQUIRED[kind]
    contract = _contract(kind)
    names = [a.arg for a in positional + args.kwonlyargs]
    n_pos_defaults = len(args.defaults)
    required = [a.arg for a in positional[: len(positional) - n_pos_defaults]]
    required += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    for name in required:
        if name not in allowed:
            return f"{label}() has a required parameter {name!r} that hpcdl does not pass ({contract})"
    if args.kwarg is None:
        for name in needed:
            if name not in names:
                return f"{label}({', '.join(names)}) does not take {name!r} ({contract})"
    return None


def _contract(kind: str) -> str:
    if kind == "model":
        return "a model function takes num_classes, and optionally channels and image_size"
    return "a dataset function takes any of root, image_size, channels, seed and returns (train, test, num_classes)"


def check_script(script: str) -> None:
    path = Path(script).expanduser()
    if not path.is_file():
        raise SpecError(f"invalid script: {script} does not exist (give a path to your training script)")


def check(spec, profile) -> None:
    """Every user-code check of a spec against a profile (refs and script); raises SpecError (exit 2)."""
    pythonpath = tuple(getattr(profile, "pythonpath", ()) or ())
    if spec.script is not None:
        check_script(spec.script)
    if is_ref(spec.model):
        check_ref("model", spec.model, pythonpath)
    if is_ref(spec.dataset):
        check_ref("dataset", spec.dataset, pythonpath)
