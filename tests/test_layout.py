"""The code's layout, read from its source: only a task's own folder (and the catalog, the registry of
tasks) knows which task it is; no hpc_dl modules import each other in a circle; every package is
installed; every registered task fills the declared Task interface."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

from hpc_dl import catalog

ROOT = Path(__file__).resolve().parents[1]
# import name -> folder (jobs/ and analysis/ install as hpc_dl.jobs and hpc_dl.analysis)
PACKAGES = {"hpc_dl": ROOT / "hpc_dl", "hpc_dl.jobs": ROOT / "jobs", "hpc_dl.analysis": ROOT / "analysis"}
TASK_HOMES = ("hpc_dl/train/tasks/", "hpc_dl/catalog.py")  # where a task may be named


def modules() -> dict[str, tuple[Path, bool]]:
    """Every module: import name -> (file, whether it is a package's __init__)."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            init = parts[-1] == "__init__"
            found[".".join([package, *(parts[:-1] if init else parts)])] = (path, init)
    return found


def strings(node: ast.AST) -> set[str]:
    """The string constants a comparison operand holds: itself, or a tuple, list or set of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(strings(e) for e in node.elts))
    return set()


def names_a_task(node: ast.Compare) -> bool:
    """`x == "detection"`, `task in ("a", "b")`, `info.task != "..."`: a comparison with a task's name, or
    of a `.task` with any string."""
    sides = [node.left, *node.comparators]
    literals = set().union(*(strings(s) for s in sides))
    by_attribute = any(isinstance(s, ast.Attribute) and s.attr == "task" for s in sides)
    return bool(literals & set(catalog.TASKS)) or (by_attribute and bool(literals))


def task_mentions(path: Path, root: Path = ROOT) -> list[str]:
    """`file:line: text` for each line that mentions detection or compares a task's name."""
    text = path.read_text()
    lines = text.splitlines()
    hits = {i + 1 for i, line in enumerate(lines) if "detection" in line.lower()}
    hits |= {n.lineno for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Compare) and names_a_task(n)}
    rel = path.relative_to(root).as_posix()
    return [f"{rel}:{i}: {lines[i - 1].strip()}" for i in sorted(hits)]


def test_only_a_tasks_own_folder_names_it():
    offenders = [
        hit
        for path, _ in modules().values()
        if not path.relative_to(ROOT).as_posix().startswith(TASK_HOMES)
        for hit in task_mentions(path, ROOT)
    ]
    assert offenders == [], "shared code that names a task (ask the task, or its catalog.TASKS entry):\n" + "\n".join(
        offenders
    )


def test_the_task_check_sees_what_it_should(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        'if model.task == "x": pass\nif t in ("classification", "y"): pass\nif task != "N/A": pass\n'
        "if a.task is b: pass\nif self.model in catalog.models_of(catalog.DEFAULT_TASK): pass\n"
        "# a DetectionTrainer\n"
    )
    assert task_mentions(probe, tmp_path) == [
        'probe.py:1: if model.task == "x": pass',
        'probe.py:2: if t in ("classification", "y"): pass',
        "probe.py:6: # a DetectionTrainer",
    ]


def imports(name: str, path: Path, init: bool, known: dict) -> set[str]:
    """The hpc_dl modules a module imports, at module level or inside functions (not under TYPE_CHECKING):
    `from .x import y` counts as importing the module x.y where that is one, else x; its own packages
    (which Python has already begun importing) do not count."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(x)
        for n in ast.walk(tree)
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
        for b in n.body
        for x in ast.walk(b)
    }
    named: set[str] = set()
    for n in ast.walk(tree):
        if id(n) in typing_only:
            continue
        if isinstance(n, ast.Import):
            named |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            parts = name.split(".")
            base = parts[: len(parts) - n.level + (1 if init else 0)] if n.level else []
            module = ".".join(base + ([n.module] if n.module else []))
            subs = {f"{module}.{a.name}" for a in n.names} & known.keys()
            named |= subs if len(subs) == len(n.names) else {module} | subs
    found = set()
    for m in named:
        while m and m not in known:
            m = m.rpartition(".")[0]
        if m and m != name and not name.startswith(m + "."):
            found.add(m)
    return found


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """Each import circle once, as `a -> b -> a` (starting from its smallest module name)."""
    found: set[tuple[str, ...]] = set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                loop = path[path.index(nxt) :]
                start = loop.index(min(loop))
                found.add(tuple(loop[start:] + loop[:start]))
            elif nxt not in done:
                walk(nxt, [*path, nxt])
        done.add(node)

    done: set[str] = set()
    for node in sorted(graph):
        if node not in done:
            walk(node, [node])
    return [" -> ".join([*c, c[0]]) for c in sorted(found)]


def test_no_import_circles():
    known = modules()
    graph = {name: imports(name, path, init, known) for name, (path, init) in known.items()}
    assert graph["hpc_dl.train.setup"] >= {"hpc_dl.train.tasks", "hpc_dl.train.tasks.base"}  # it does see imports
    assert cycles(graph) == [], "modules that import each other (each room imports only downward):\n" + "\n".join(
        cycles(graph)
    )


def test_cycles_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == ["a -> b -> c -> a"]


def test_every_package_is_installed():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    packages = {name for name, (_, init) in modules().items() if init}
    assert sorted(packages - listed) == []


def test_every_registered_task_fills_the_interface():
    from hpc_dl.train import tasks
    from hpc_dl.train.tasks.base import Task

    for name in catalog.TASKS:
        task = tasks.get(name)  # an abstract method left out would fail here
        assert isinstance(task, Task) and task.name == name and task.info is catalog.TASKS[name]
    used = {m.task for m in catalog.MODELS.values()} | {d.task for d in catalog.DATASETS.values()}
    assert used <= set(catalog.TASKS)
    assert tasks.of("fasterrcnn_resnet50_fpn", "coco").name == catalog.MODELS["fasterrcnn_resnet50_fpn"].task
    assert tasks.of("pkg.mod:fn", "digits") is tasks.get(catalog.DEFAULT_TASK)  # your own model: the data's task
