"""The report's HTML page: a Report, its verdicts and figures -> sections of real tables, notes and figures,
rendered by templates/report.html.j2.

Tables are pandas Stylers over the cells the Markdown tables write (collect's formats), numbers and their
headers right-aligned; each sits in its own scrolling box, so a wide table never widens the page. The
scaling table is one table per comparison group, its key columns first (strategy, workers, the rates,
speedup, efficiency) and the group's own columns (model, data set, batch, precision, device) in its title.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import collect as col
from . import markdown as md_mod
from . import network as network_mod
from . import summary

TEMPLATES = Path(__file__).resolve().parent / "templates"  # packaged: setup.cfg's package_data
# the scaling table's first columns on the page; the group's rates, speedup and efficiency follow
KEY_COLUMNS = ("strategy", "variant", "workers")
CONTEXT_HEADERS = {
    "strategy": "strategy",
    "variant": "variant",
    "model": "model",
    "workers": "workers",
    "nodes": "nodes",
    "node_names": "node names",
    "device_model": "device model",
    "shared": "shared nodes",
    "runs": "runs",
    "ci_share": "95% CI (% of median)",
    "flags": "flags",
}


@dataclass
class Block:
    """One thing in a section: a table (html), notes, a group's verdicts, or a figure (base64 png)."""

    kind: str  # table, notes, verdicts, figure
    title: str = ""
    html: str = ""
    items: list[str] = field(default_factory=list)
    png: str = ""
    name: str = ""


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block]
    nav: str = ""  # its link in the page's header (default: the title)


def cell(value, column: str) -> str:
    """A cell as the Markdown tables write it; the context's interval share as a percentage, flags as words."""
    if column == "ci_share":
        return "-" if pd.isna(value) else f"{100 * value:.0f} %"
    if column == "shared":
        return "-" if _missing(value) else ("yes" if value else "no")
    return md_mod.fmt(value, column)


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def numeric(values: pd.Series) -> bool:
    """Whether a column holds numbers (or intervals of them): its cells and header are right-aligned."""
    if pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_numeric_dtype(values):
        return True
    present = [v for v in values.astype(object) if not _missing(v)]
    return bool(present) and all(isinstance(v, (int, float, tuple)) and not isinstance(v, bool) for v in present)


def html_table(df: pd.DataFrame, headers: dict[str, str], name: str) -> str:
    """A real <table> (a pandas Styler) of the formatted cells, numeric columns right-aligned."""
    cells = pd.DataFrame({h: [cell(v, c) for v in df[c]] for c, h in headers.items()}, index=range(len(df)))
    right = [h for c, h in headers.items() if numeric(df[c])]
    classes = pd.DataFrame({h: ["num" if h in right else ""] * len(df) for h in cells}, index=cells.index)
    styler = cells.style.format(escape="html").hide(axis="index").set_td_classes(classes)
    styler = styler.set_table_styles({h: [{"selector": "th", "props": "text-align: right"}] for h in right})
    return styler.to_html(table_uuid=name, table_attributes='class="data"')


def page_headers(points: pd.DataFrame, keys: list[str], rate: str) -> dict[str, str]:
    """A group's columns: strategy, variant (where a point has one), workers, the rates, speedup,
    efficiency, then the rest of collect's headers in their order, less the group's own keys."""
    shown = col.shown_headers(points)
    if (points["variant"] == "-").all():
        shown.pop("variant", None)
    rates = [rate, *(c for c in shown if c in md_mod.RATES)]
    first = [c for c in dict.fromkeys([*KEY_COLUMNS, *rates, "speedup", "efficiency"]) if c in shown]
    return {c: shown[c] for c in first + [c for c in shown if c not in first and c not in keys]}


def summary_section(verdicts: list[summary.Verdict]) -> Section:
    blocks = [
        Block("verdicts", label or "the whole study", items=[v.text for v in part])
        for label, part in summary.by_group(verdicts)
    ]
    return Section("summary", "Summary", blocks or [Block("notes", items=["No completed run to judge."])])


def scaling_section(report: col.Report) -> Section | None:
    if report.scaling.empty:
        return None
    blocks = []
    for label, key, points in summary.groups(report.scaling):
        shown = points.assign(
            throughput_ci=list(zip(points["throughput_ci_low"], points["throughput_ci_high"], strict=True))
        )
        headers = page_headers(points, list(key), summary.rate_column(summary.task(key)))
        blocks.append(Block("table", label, html_table(shown, headers, f"scaling-{len(blocks)}")))
    blocks.append(Block("notes", items=[line.removeprefix("- ") for line in col.scaling_notes(report)]))
    return Section("scaling", "Scaling", blocks)


def context_table(report: col.Report) -> pd.DataFrame:
    """Per point: where it ran and the flags that ask for care (add repeats, shared nodes)."""
    ctx = summary.point_context(report.scaling, report.runs)
    flags = [
        "; ".join(f for f, on in (("add repeats", share > summary.CI_LIMIT), ("shared nodes", shared)) if on)
        for share, shared in zip(ctx["ci_share"], ctx["shared"].map(lambda v: not _missing(v) and bool(v)), strict=True)
    ]
    return ctx.assign(flags=flags)


def context_notes() -> list[str]:
    return [
        f"add repeats: the 95% interval of the point's repeats is wider than {100 * summary.CI_LIMIT:.0f} % of "
        "their median; a point that ran once has no interval (-).",
        "shared nodes: a run's nodes were not its job's alone (no --exclusive); - where the runs did not say.",
    ]


def context_headers(ctx: pd.DataFrame) -> dict[str, str]:
    """CONTEXT_HEADERS, less the variant where no point has one."""
    return {c: h for c, h in CONTEXT_HEADERS.items() if c != "variant" or (ctx["variant"] != "-").any()}


def context_section(ctx: pd.DataFrame) -> Section | None:
    if ctx.empty:
        return None
    table = Block("table", html=html_table(ctx, context_headers(ctx), "context"))
    return Section("context", "Measurement context", [table, Block("notes", items=context_notes())])


def figure_sections(images: dict[str, str], comparisons: tuple[str, ...]) -> list[Section]:
    """The comparisons (every strategy on one axis) first, then the per-strategy panels and the rest."""

    def fig(name: str) -> Block:
        return Block("figure", name.removeprefix("compare_").replace("_", " "), png=images[name], name=name)

    first = Section("compare", "Strategies compared, one axis per group", [fig(n) for n in images if n in comparisons])
    rest = [fig(n) for n in images if n not in comparisons and n != "breakdown"]
    return [s for s in (first, Section("figures", "One panel per strategy", rest)) if s.blocks]


def breakdown_section(report: col.Report, images: dict[str, str]) -> Section | None:
    b = report.breakdown
    if b is None or b.empty:
        return None
    blocks = [Block("table", html=html_table(b, md_mod.BREAKDOWN_HEADERS, "breakdown"))]
    blocks.append(Block("notes", items=[line[2:] for line in md_mod.breakdown_markdown(b) if line.startswith("- ")]))
    if "breakdown" in images:
        blocks.append(Block("figure", "breakdown", png=images["breakdown"], name="breakdown"))
    return Section("breakdown", "Where the time goes (seconds per epoch, mean over ranks)", blocks, "Time breakdown")


def fits_section(report: col.Report) -> Section | None:
    f = report.fits
    if f is None or f.empty:
        return None
    lines = md_mod.fits_section(f)
    shown = f.assign(serial_fraction_ci=list(zip(f["ci_low"], f["ci_high"], strict=True)))
    notes = [line[2:] for line in lines if line.startswith("- ")]
    title = next(line[3:] for line in lines if line.startswith("## "))
    blocks = [Block("table", html=html_table(shown, md_mod.FIT_HEADERS, "fits")), Block("notes", items=notes)]
    return Section("fits", title, blocks, "Serial fraction")


def other_sections(report: col.Report) -> list[Section]:
    """K-fold, the network probes and the runs that did not complete."""
    found = []
    if report.kfold is not None and not report.kfold.empty:
        notes = [line[2:] for line in md_mod.kfold_section(report.kfold) if line.startswith("- ")]
        table = Block("table", html=html_table(report.kfold, md_mod.KFOLD_HEADERS, "kfold"))
        found.append(Section("kfold", "K-fold cross-validation", [table, Block("notes", items=notes)]))
    if report.probes is not None and not report.probes.empty:
        shown = network_mod.probe_summary(report.probes).round({"latency_us": 1, "busbw_gbps": 3})
        table = html_table(shown, network_mod.SUMMARY_HEADERS, "probes")
        found.append(Section("network", "Network (hpcdl probe)", [Block("table", html=table)]))
    bad = report.not_completed
    if not bad.empty:
        evidence = [f"{r.run} ({r.category}): {r.evidence}" for r in bad[bad["evidence"].notna()].itertuples()]
        blocks = [
            Block("notes", items=[md_mod.failure_classes(bad)]),
            Block("table", html=html_table(bad, md_mod.FAILURE_HEADERS, "failures")),
        ]
        if evidence:
            blocks.append(Block("notes", "The line that shows each class", items=evidence))
        found.append(Section("failures", "Runs that did not complete", blocks))
    if report.skipped_lines:
        notes = [f"Skipped {report.skipped_lines} corrupt or truncated log line(s)."]
        found.append(Section("skipped", "Log lines skipped", [Block("notes", items=notes)]))
    return found


def render(report: col.Report, verdicts: list, images: dict[str, str], env: dict[str, str], comparisons) -> str:
    """The whole page: the summary first, then the tables, figures, failures and environment."""
    import jinja2

    sections = [
        summary_section(verdicts),
        scaling_section(report),
        context_section(context_table(report)) if not report.scaling.empty else None,
        *figure_sections(images, comparisons),
        breakdown_section(report, images),
        fits_section(report),
        *other_sections(report),
    ]
    done = int((report.runs["state"] == "COMPLETED").sum())
    loader = jinja2.FileSystemLoader(str(TEMPLATES))
    page = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    return page.get_template("report.html.j2").render(
        runs=len(report.runs), completed=done, sections=[s for s in sections if s is not None], environment=env
    )
