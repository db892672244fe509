"""Option blocks shared by commands. The spec options are generated from JobSpec's field declarations
(hpc_dl/spec.py), so a new training field is one line there and appears here, in the entrypoint's
command line and in its parser without further edits."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from ..spec import field_types, spec_fields
from ..units import parse_time


def parse_sbatch(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid --sbatch {item!r} (use KEY=VALUE, e.g. --sbatch account=myproject)")
        out[key.lstrip("-")] = value
    return out


def absolute(path: str) -> str:
    """A path given on the login node, as the job on the node must see it."""
    return str(Path(path).expanduser().absolute())


# fields whose command-line text is not the field's value: text -> value
# (paths made absolute: the job runs in its run folder, where a relative path names nothing)
CONVERT = {"time_limit": parse_time, "sbatch": parse_sbatch, "script": absolute, "data_root": absolute}


def spec_values(fields: dict) -> dict:
    """The spec options' values as JobSpec fields (time and --sbatch parsed, --script made absolute)."""
    return {k: CONVERT[k](v) if k in CONVERT and v is not None else v for k, v in fields.items()}


def _spec_option(f):
    option = f.metadata["option"]
    kind = field_types()[f.name]
    kw = {"help": f.metadata["help"] or None, "metavar": option.get("metavar")}
    if kind is dict:  # KEY=VALUE items
        kw.update(multiple=True)
    elif kind is bool and "/" in option.get("flag", ""):  # --flag/--other-flag: None when neither is given
        kw.update(default=None)  # (the profile decides)
    elif kind is bool:  # a switch
        kw.update(is_flag=True, default=f.default)
    elif f.name in CONVERT and f.default is not None:
        kw.update(default=str(f.default), show_default=True)
    else:
        kw.update(type=kind, default=f.default, show_default=f.default is not None)
    return click.option(option.get("flag", "--" + f.name.replace("_", "-")), f.name, **kw)


def throttle_option(default: int | None, help: str):
    """--throttle, refused at once when it is not >= 1 (a dry run too), as the submission would."""

    def check(_ctx, _param, value):
        from ..submit import check_throttle

        if value is not None:
            check_throttle(value)
        return value

    return click.option(
        "--throttle", type=int, default=default, show_default=default is not None, help=help, callback=check
    )


runs_dir_option = click.option(
    "--runs-dir",
    metavar="DIR",
    default=None,
    help="Root of the run folders (default: $HPCDL_RUNS or ./runs).",
)

# where a submission goes (not part of the spec)
SUBMISSION = [
    click.option(
        "--profile",
        default=None,
        help="Cluster profile (default: local without sbatch, else $HPCDL_PROFILE or discovery).",
    ),
    click.option(
        "--templates",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder of your own templates; they win over the shipped ones.",
    ),
    click.option("--study", default="default", show_default=True, help="Group runs under <runs-dir>/<study>/."),
    runs_dir_option,
]


def spec_options(exclude: tuple[str, ...] = ()):
    """Every JobSpec field a command line sets (all but those a command sets its own way, and
    `exclude`), then the submission options."""

    def decorate(f):
        options = [_spec_option(fl) for fl in spec_fields() if fl.metadata["cli"] and fl.name not in exclude]
        for option in reversed(options + SUBMISSION):
            f = option(f)
        return f

    return decorate


def apply(options):
    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def out_option(default: Path | None, help: str):
    return click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        show_default=default is not None,
        help=help,
    )


scaling_option = click.option(
    "--scaling",
    type=click.Choice(["weak", "strong"]),
    default="weak",
    show_default=True,
    help="weak: group points by per-worker batch (Gustafson fit); strong: by global batch (Amdahl fit).",
)
trim_option = click.option(
    "--trim", is_flag=True, help="Drop the fastest and slowest of 5 or more repeats (MLPerf HPC)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
dry_run_option = click.option("--dry-run", is_flag=True, help="Print what would be submitted; submit nothing.")
