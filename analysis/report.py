"""`hpcdl report`: one self-contained HTML page (figures inlined; page.py, templates/report.html.j2) and its
Markdown twin, from a Report, both opening with the summary's verdicts (summary.py)."""

from __future__ import annotations

import base64
import io
import platform
import subprocess
from pathlib import Path

import pandas as pd

from hpc_dl import __version__, events
from hpc_dl.runs import RunDir, read_json, write_atomic

from .collect import Report


def environment(report: Report) -> dict[str, str]:
    """Versions, profiles and the hpcdl source's git commit: what a reader needs to reproduce the numbers."""
    env = {"hpcdl": __version__, "python (report)": platform.python_version(), "pandas": pd.__version__}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        env["hpcdl git commit"] = commit or "unknown"
    except (OSError, subprocess.SubprocessError):
        env["hpcdl git commit"] = "unknown"
    profiles, torches, devices = set(), set(), set()
    for folder in report.runs["folder"].dropna():
        sub = read_json(RunDir(Path(folder)).submission) or {}
        if sub.get("profile"):
            profiles.add(str(sub["profile"]))
    for name in report.runs["device_name"].dropna():
        devices.add(str(name))
    for folder in report.runs["folder"].dropna()[:50]:
        first, _ = events.read_rank(RunDir(Path(folder)).rank_events(0))
        if first:
            torches.add(str(first[0].get("torch")))
    env["profiles"] = ", ".join(sorted(profiles)) or "-"
    env["torch (jobs)"] = ", ".join(sorted(t for t in torches if t and t != "None")) or "-"
    env["devices"] = "; ".join(sorted(devices)) or "-"
    return env


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def write_report(report: Report, out: Path) -> list[Path]:
    from . import cost, page, planner, plots, summary

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment(report)
    verdicts = summary.summarize(report.scaling, report.breakdown, report.runs, cost.idle_sentences(report.runs))
    figs = plots.figures(report.scaling, report.breakdown, all_figures=True)
    figs.update(planner.report_figures(report.runs))  # measured points and the plan's band, on one pair of axes
    images = {name: _png(fig) for name, fig in figs.items()}
    html_page = page.render(report, verdicts, images, env, tuple(plots.COMPARISONS))
    html_path, md_path = out / "report.html", out / "report.md"
    write_atomic(html_path, html_page)
    write_atomic(md_path, markdown(report, verdicts, env, list(images)))
    written = [html_path, md_path]
    for name, data in images.items():
        path = out / f"report-{name}.png"
        tmp = out / f".report-{name}.png.tmp"
        tmp.write_bytes(base64.b64decode(data))
        tmp.replace(path)
        written.append(path)
    return written


def markdown(report: Report, verdicts: list, env: dict[str, str], figures: list[str]) -> str:
    """The page's Markdown twin: the same summary, the tables, the measurement context, the environment."""
    from . import collect as col
    from . import markdown as md_mod
    from . import page, summary

    md = col.to_markdown(report, summary=summary.markdown(verdicts) or ["", "No completed run to judge."])
    if not report.scaling.empty:
        ctx = page.context_table(report)
        shown = ctx.assign(**{c: [page.cell(v, c) for v in ctx[c]] for c in ("ci_share", "shared")})
        md += "\n## Measurement context\n\n" + md_mod.table(shown, page.context_headers(ctx)) + "\n\n"
        md += "\n".join(f"- {note}" for note in page.context_notes()) + "\n"
    md += "\n## Environment\n\n" + "\n".join(f"- {k}: {v}" for k, v in env.items()) + "\n"
    return md + "\n## Figures\n\n" + "\n".join(f"![{n}](report-{n}.png)" for n in figures) + "\n"
