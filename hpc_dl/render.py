"""(spec, profile, context) -> the job script and the submission parameters. Pure: no I/O but reading templates.

Every value a template prints is shell-quoted unless it is `Shell` (text we trust as shell: the profile's
set-up lines, option names validated against a pattern). Templates hold loops and ifs only; all values
are computed here.
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__, strategies
from .errors import TemplateError
from .node.jobscript import stop_margin
from .profiles import ClusterProfile
from .spec import JobSpec, entry_fields
from .units import format_time


def _shipped_templates() -> Path:
    from . import sbatch_templates

    return Path(sbatch_templates.__file__).parent


class Shell(str):
    """Text that goes into the script as it is (trusted shell); everything else is quoted."""


def _finalize(value: Any) -> str:
    if isinstance(value, Shell):
        return value
    return shlex.quote(str(value))


@dataclass(frozen=True)
class RenderContext:
    """What the script needs besides the spec and the profile; tests pass fixed values."""

    run_dir: Path
    run_id: str
    python: str  # interpreter used when the profile does not name one
    templates: Path | None = None  # a user's folder whose templates win over the shipped ones
    template: str | None = None  # instead of the strategy's launcher template (hpcdl doctor)


@dataclass(frozen=True)
class Rendered:
    script: str
    sbatch: dict[str, str]  # the #SBATCH options, long name -> value, sorted
    executor: str  # the backend's name (hpc_dl/backends/)
    parameters: dict[str, Any] = field(default_factory=dict)  # the executor's own, besides the options
    request: dict[str, Any] = field(default_factory=dict)  # what the backend hands its scheduler

    def describe(self) -> str:
        """The submission parameters, as --dry-run prints them: the backend's request."""
        return "\n".join([f"executor: {self.executor}", *(f"  {k}: {v}" for k, v in self.request.items())])


def sbatch_options(spec: JobSpec, profile: ClusterProfile) -> dict[str, str]:
    """The generic resources of a spec as SLURM's own option names. The one table of that mapping."""
    part = profile.check(spec)
    strategy = strategies.get(spec.strategy)
    cpus = spec.cpus_per_task or profile.cpus_per_task
    per_node = strategy.tasks == "node"
    opts: dict[str, str] = {
        "job-name": spec.name,
        "nodes": str(spec.nodes),
        "ntasks-per-node": "1" if per_node else str(spec.gpus),
        "cpus-per-task": str(cpus * spec.gpus if per_node else cpus),
        "time": format_time(spec.time_limit),
    }
    opts.update(profile.backend.scheduler_options(spec, part, int(stop_margin(60 * spec.time_limit))))
    if profile.exclusive_for(spec):
        opts.update(profile.backend.WHOLE_NODES)
    if spec.mem is not None:
        opts["mem"] = spec.mem
    opts.update(profile.sbatch)
    opts.update(spec.sbatch)
    return dict(sorted(opts.items()))


def entry_args(spec: JobSpec, run_dir: Path) -> list[str]:
    """The entrypoint's command line: the training part of the spec, flag by flag."""
    args = ["--run-dir", str(run_dir)]
    for f in entry_fields():
        value = getattr(spec, f.name)
        if isinstance(value, bool):  # a switch: its flag when on, nothing when off
            args += ["--" + f.name.replace("_", "-")] if value else []
        elif value is not None:
            args += ["--" + f.name.replace("_", "-"), str(value)]
    if strategies.get(spec.strategy).template == "python.sh.j2":  # one process that starts its own workers
        args += ["--workers", str(spec.gpus)]
    return args


def command(spec: JobSpec, run_dir: Path) -> list[str]:
    """What the launcher starts after the interpreter: hpcdl's entrypoint, or your --script and its arguments."""
    if spec.script is not None:
        return [spec.script, *spec.script_args]
    return ["-m", strategies.get(spec.strategy).entrypoint, *entry_args(spec, run_dir)]


def render(spec: JobSpec, profile: ClusterProfile, ctx: RenderContext) -> Rendered:
    """The job script (the strategy's launcher template, or ctx.template) and the submission parameters."""
    import jinja2

    strategy = strategies.get(spec.strategy)
    sbatch = sbatch_options(spec, profile)
    cpus = spec.cpus_per_task or profile.cpus_per_task
    variables = {
        "version": __version__,
        "run_id": ctx.run_id,
        "run_dir": str(ctx.run_dir),
        "strategy": strategy.name,
        "profile": profile.name,
        "sbatch": [(Shell(k), None if k in profile.backend.FLAGS else v) for k, v in sbatch.items()],
        "modules": list(profile.modules),
        "setup": [Shell(line) for line in profile.setup],
        "env": [(Shell(k), v) for k, v in sorted(profile.env.items())],
        "python": Shell(shlex.quote(profile.python)) if profile.python else ctx.python,
        "nodes": spec.nodes,
        "gpus": spec.gpus,
        "world_size": spec.world_size,
        "threads": cpus,
        "multi_node": spec.nodes > 1,
        "entrypoint": strategy.entrypoint,
        "entry_args": entry_args(spec, ctx.run_dir),
        "command": command(spec, ctx.run_dir),
        "pythonpath": ":".join(profile.pythonpath),
        "bin_dir": Shell(shlex.quote(str(Path(ctx.python).parent)) + "/") if not profile.python else Shell(""),
        "local": profile.backend.on_this_machine,
        "expect_gpus": spec.gpus if profile.has_gpus(profile.partition_for(spec), spec.device) else 0,
        "cpu_workers": spec.device == "cpu",
    }
    if ctx.templates is not None and not Path(ctx.templates).is_dir():
        raise TemplateError(f"templates folder {str(ctx.templates)!r} does not exist")
    env = _environment(str(ctx.templates) if ctx.templates is not None else None)
    try:
        script = env.get_template(ctx.template or strategy.template).render(**variables)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {exc.name!r} not found (looked in {_where(ctx)})") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or exc.name}:{exc.lineno}: template syntax error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"{_template_line(exc)}: {exc.message} (variables: {', '.join(sorted(variables))})"
        ) from None
    backend = profile.backend
    parameters = backend.parameters(spec)
    request = backend.request(sbatch, parameters)
    return Rendered(script, sbatch, backend.name, parameters, request)


@functools.lru_cache(maxsize=8)
def _environment(templates: str | None):
    """One Jinja environment per templates folder (a sweep renders many scripts with it)."""
    import jinja2

    loaders = [jinja2.FileSystemLoader(str(_shipped_templates()))]
    if templates is not None:
        loaders.insert(0, jinja2.FileSystemLoader(templates))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=True,
    )


def _where(ctx: RenderContext) -> str:
    folders = ([str(ctx.templates)] if ctx.templates else []) + [str(_shipped_templates())]
    return ", ".join(folders)


def _template_line(exc: BaseException) -> str:
    """file:line of the template frame where an undefined variable was used (jinja maps frames to lines)."""
    tb = exc.__traceback__
    where = "template"
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where
