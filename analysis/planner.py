"""`hpcdl plan` as a library: a study's runs and a probe in, the plan (and its leave-one-out check) out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hpc_dl.errors import UsageError

from . import plan as plan_mod
from . import plan_inputs as inputs
from . import plan_report as report_mod
from . import plan_terms
from .collect import records
from .network import Network, links_frame
from .scaling import GROUP


@dataclass(frozen=True)
class PlanOptions:
    workers: list[int] | None = None
    nodes: list[int] | None = None
    strategy: str | None = None
    probe: str | None = None
    profile: str | None = None
    partition: str | None = None
    min_efficiency: float = 0.7
    epochs: int | None = None
    samples: int | None = None
    target_s: float | None = None
    validate: bool = False


@dataclass
class PlanResult:
    study: Path
    options: PlanOptions
    plan: pd.DataFrame
    limits: inputs.Limits
    networks: dict = field(default_factory=dict)  # group key -> Network
    validation: pd.DataFrame | None = None
    skipped: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lim = self.limits
        context = [f"- Shapes: {lim.describe()}; GPUs are workers (CPU processes where the study ran on CPUs)."]
        context += [f"- Not planned: {line}." for line in self.skipped]
        text = report_mod.plan_markdown(
            self.study.name, self.plan, self.networks, context, self.options.min_efficiency, self.options.target_s
        )
        return text + (report_mod.validate_markdown(self.validation) if self.validation is not None else "")

    def to_json(self) -> dict:
        nets = {
            "/".join(map(str, k)): {
                "source": n.source,
                "links": records(links_frame(n.links)),
                "notes": sorted(n.notes),
            }
            for k, n in self.networks.items()
        }
        data = {"study": str(self.study), "limits": self.limits.__dict__, "networks": nets}
        data["plan"] = records(self.plan)
        data["validate"] = records(self.validation) if self.validation is not None else None
        data["skipped"] = self.skipped
        return json.loads(json.dumps(data, default=str))


def _groups(points: pd.DataFrame, strategy: str | None) -> tuple[list, list[str]]:
    """The groups to plan, and a line for each one no model covers."""
    if strategy is not None:
        plan_terms.model_for(strategy)
        points = points[points["strategy"] == strategy]
        if points.empty:
            raise UsageError(f"no completed run of strategy {strategy!r} in the study: nothing to plan from")
    kept, skipped = [], []
    for key, g in points.groupby(GROUP, dropna=False, sort=True):
        if g.iloc[0]["strategy"] in plan_terms.MODELS:
            kept.append((key, g))
        else:
            skipped.append(f"{g.iloc[0]['strategy']} (no plan model)")
    if not kept:
        plan_terms.model_for(points.iloc[0]["strategy"])
    return kept, skipped


def network_for(record: dict | None, g: pd.DataFrame) -> Network | None:
    """The probe's network when one matches the group's device, else one fitted from the group's runs."""
    device = g.iloc[0]["device"]
    if record is not None and record.get("device") == device:
        return inputs.probe_network(record)
    net = plan_mod.study_network(g)
    if net is not None and record is not None:
        net.notes.add(f"probe {record.get('run')} measured {record.get('device')} workers, the study ran on {device}")
    return net


def make_plan(study: Path, runs_root: Path, opts: PlanOptions) -> PlanResult:
    _, points = inputs.study_points(study)
    groups, skipped = _groups(points, opts.strategy)
    lim = inputs.limits(points, opts.profile, opts.partition)
    device = groups[0][1].iloc[0]["device"]
    record = inputs.find_probe(opts.probe, study, runs_root, lim.profile, None if opts.probe else device)
    parts, checks, nets = [], [], {}
    for key, g in groups:
        net = network_for(record, g)
        if net is None:
            raise UsageError(
                f"no network for {g.iloc[0]['strategy']} {g.iloc[0]['model']}: no probe of profile {lim.profile!r} "
                f"and no 1-worker and multi-worker runs to fit one from (run hpcdl probe --profile {lim.profile})"
            )
        nets[key] = net
        shapes = inputs.shapes(opts.workers, opts.nodes, lim, g.iloc[0]["strategy"], plan_mod.measured_shapes(g))
        planned = plan_mod.plan_group(g, net, shapes)
        samples = opts.samples or float(g["samples"].median())
        parts.append(report_mod.costs(planned, samples, opts.epochs or int(g["epochs"].iloc[0])))
        if opts.validate:
            probe_net = net if record is not None and net.source.startswith("probe") else None
            checks.append(plan_mod.validate_group(g, probe_net, plan_mod.study_network))
    validation = pd.concat(checks, ignore_index=True) if checks else None
    return PlanResult(study, opts, pd.concat(parts, ignore_index=True), lim, nets, validation, skipped)


def write(result: PlanResult, out: Path) -> list[Path]:
    """plan.csv, plan.md (and validate.csv) and plan.png in `out`."""
    import matplotlib.pyplot as plt

    from hpc_dl.runs import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    files = {out / "plan.csv": result.plan.to_csv(index=False), out / "plan.md": result.markdown()}
    if result.validation is not None:
        files[out / "validate.csv"] = result.validation.to_csv(index=False)
    for path, text in files.items():
        write_atomic(path, text)
    fig = report_mod.figure(result.plan)
    tmp = out / ".plan.png.tmp"
    fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    tmp.replace(out / "plan.png")
    return [*files, out / "plan.png"]


def report_figures(runs: pd.DataFrame) -> dict:
    """The report page's plan figure for the studies of its runs (none where nothing can be planned)."""
    folders = runs.loc[runs["state"] == "COMPLETED", "folder"].dropna()
    if folders.empty:
        return {}
    study = Path(folders.iloc[0]).parent
    try:
        result = make_plan(study, study.parent, PlanOptions())
    except (UsageError, inputs.CollectError):
        return {}
    return {"plan": report_mod.figure(result.plan)}
