"""Each shared notion has one owner: scheduler facts live behind the backends, a run's and a study's paths
in hpc_dl/runs.py; and the code stays in rooms a reader can take in (modules and functions of bounded size).
Every assertion lists the offenders it found."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOMS = ("hpc_dl", "jobs", "analysis")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# the run folder's and the study folder's layout (hpc_dl/runs.py): file names nobody else spells
LAYOUT_FILES = (
    "spec.json",
    "profile.json",
    "submission.json",
    "exit.json",
    "cancel.json",
    "stop.json",
    "result.json",
    "job.sh",
    "job.log",
    "last.pt",
    ".submitit",
    "sweep-",
)
LAYOUT_FOLDERS = {"tensorboard", "checkpoints", "submitit", "logs", "events", "attempts"}  # as `path / "name"`


def modules() -> list[Path]:
    return sorted(p for room in ROOMS for p in (REPO / room).rglob("*.py"))


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def spells_a_path(text: str) -> bool:
    """A string that is (a piece of) a layout path: a file name whole, or the start of a sweep record's
    name or of the checkpoint's; texts that only mention a file (messages, patterns) are not."""
    name = text.strip("/")
    return name in LAYOUT_FILES or name.startswith(("sweep-", ".last.pt", "checkpoints/", "tensorboard/"))


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (text, not code)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_no_scheduler_name_is_tested_outside_the_backends():
    offenders = []
    for path in modules():
        if "backends" in path.parts or path.name == "profiles.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Attribute) and s.attr == "scheduler" for s in sides):
                    offenders.append(f"{rel(path)}:{node.lineno}")
    assert offenders == []


def test_no_run_or_study_path_is_spelled_outside_runs_py():
    offenders = []
    for path in modules():
        if path == REPO / "hpc_dl" / "runs.py":
            continue
        tree = ast.parse(path.read_text())
        skip = docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                if spells_a_path(node.value):
                    offenders.append(f"{rel(path)}:{node.lineno} {node.value!r}")
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant):
                if node.right.value in LAYOUT_FOLDERS:
                    offenders.append(f"{rel(path)}:{node.lineno} / {node.right.value!r}")
    assert offenders == []


def test_modules_and_functions_stay_small():
    long_modules = [f"{rel(p)} ({n})" for p in modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    long_functions = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if (n := node.end_lineno - start + 1) > MAX_FUNCTION_LINES:
                    long_functions.append(f"{rel(path)}:{node.lineno} {node.name} ({n})")
    assert (long_modules, long_functions) == ([], [])
