"""probe and plan: measure the allocation's collectives, then predict larger shapes from a study."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..devices import DEVICES
from ..errors import HpcdlError
from .cmd_run import runs_root
from .options import apply, json_option, out_option, runs_dir_option


@click.command()
@click.option("--profile", default=None, help="The profile to probe (default as for submit).")
@click.option("--partition", default=None, help="The partition (default: the profile's).")
@click.option("--nodes", type=int, default=1, show_default=True, help="Nodes: 2 or more measure across nodes too.")
@click.option("--gpus", type=int, default=2, show_default=True, help="GPUs (or CPU workers) per node.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True, help="As for submit.")
@click.option("--study", default="probe", show_default=True, help="The study folder the probe's run goes in.")
@click.option("--timeout", type=float, default=900, show_default=True, help="Seconds to wait for the job.")
@runs_dir_option
def probe(profile, partition, nodes, gpus, device, study, timeout, runs_dir) -> int:
    """Measure all-reduce, all-gather and reduce-scatter against message size, as a short job."""
    from .. import control, profiles
    from .. import probe as probe_mod
    from ..submit import submit

    prof = profiles.load(profile)
    spec = probe_mod.probe_spec(prof, nodes, gpus, partition, device)
    click.echo(f"submitting a {spec.time_limit}-minute probe on profile {prof.name} ({nodes} node(s) x {gpus}) ...")
    run = submit(spec, prof, runs_root(runs_dir), study, template=probe_mod.TEMPLATE).run
    state = control.wait(run, timeout_s=timeout)
    record = probe_mod.read(run)
    if record is None or not control.is_terminal(state):
        raise HpcdlError(f"probe {run.run_id} {state}: no probe record (see hpcdl logs {run.run_id})")
    from ..analysis import network

    links = network.fit_links(network.probe_table([record]), run.run_id)
    table = [("COLLECTIVE", "PLACEMENT", "RANKS", "LATENCY/STEP (us)", "BUSBW (GB/s)", "FIT RESIDUAL")]
    for (op, pl), link in sorted(links.items()):
        table.append(
            (
                network.WORDS[op],
                pl,
                f"2-{link.max_ranks}",
                f"{link.latency_s * 1e6:.3g}",
                f"{link.busbw_gbps:.3g}",
                f"{link.residual:.0%}",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"probe record: {run.probe} ({record['backend']}, hosts {', '.join(sorted(set(record['hosts'])))})")
    click.echo(f"plan with it: hpcdl plan STUDY --probe {run.run_id}")
    return 0


def _ints(text: str | None, what: str) -> list[int] | None:
    from ..sweep import parse_list

    return None if text is None else parse_list(text, what, int)


PLAN_OPTIONS = [
    click.option(
        "--workers",
        default=None,
        metavar="LIST",
        help="Workers (GPUs) to plan, e.g. 8,16,32,64 (default: the powers of two the partition holds).",
    ),
    click.option("--nodes", default=None, metavar="LIST", help="Node counts to put them on (default: the fewest)."),
    click.option("--strategy", default=None, help="Plan this strategy's runs only."),
    click.option(
        "--probe",
        "probe_ref",
        default=None,
        metavar="RUN",
        help="A probe's run (folder or id) or a folder "
        "of probes (default: the newest of the study's profile, in the study, then in RUNS/probe).",
    ),
    click.option("--profile", default=None, help="Plan for this profile (default: the study's)."),
    click.option("--partition", default=None, help="Plan for this partition (default: the study's)."),
    click.option(
        "--min-efficiency",
        type=float,
        default=0.7,
        show_default=True,
        help="Say where efficiency drops below this, and why.",
    ),
    click.option("--epochs", type=int, default=None, help="Epochs of the whole training (default: the study's)."),
    click.option("--samples", type=int, default=None, help="Training samples per epoch (default: the study's)."),
    click.option(
        "--target",
        default=None,
        metavar="TIME",
        help="Suggest the cheapest shape that trains --epochs within TIME (minutes, HH:MM:SS or D-HH:MM:SS).",
    ),
    click.option("--validate", is_flag=True, help="Predict every measured shape from the others and print the error."),
    json_option,
    out_option(None, "Also write plan.csv, plan.md, plan.png (and validate.csv) there."),
    runs_dir_option,
]


@click.command()
@click.argument("study")
@apply(PLAN_OPTIONS)
def plan(
    study,
    workers,
    nodes,
    strategy,
    probe_ref,
    profile,
    partition,
    min_efficiency,
    epochs,
    samples,
    target,
    validate,
    as_json,
    out,
    runs_dir,
) -> int:
    """Predict throughput, efficiency and GPU-hours at larger shapes from a study's measured runs."""
    from ..analysis import planner
    from ..units import parse_time

    root = runs_root(runs_dir)
    folder = Path(study) if Path(study).is_dir() else root / study
    opts = planner.PlanOptions(
        workers=_ints(workers, "workers"),
        nodes=_ints(nodes, "nodes"),
        strategy=strategy,
        probe=probe_ref,
        profile=profile,
        partition=partition,
        min_efficiency=min_efficiency,
        epochs=epochs,
        samples=samples,
        target_s=None if target is None else 60.0 * parse_time(target, "target time"),
        validate=validate,
    )
    result = planner.make_plan(folder, root, opts)
    written = planner.write(result, out) if out is not None else []
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(result.markdown(), nl=False)
        for path in written:
            click.echo(f"wrote {path}")
    return 0
