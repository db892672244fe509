"""`hpcdl report`: one self-contained HTML page (figures inlined) and its Markdown twin, from a Report."""

from __future__ import annotations

import base64
import html
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
    from . import planner, plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment(report)
    figs = plots.figures(report.scaling, report.breakdown, all_figures=True)
    figs.update(planner.report_figures(report.runs))  # measured points and the plan's band, on one pair of axes
    images = {name: _png(fig) for name, fig in figs.items()}
    md = report.markdown + "\n## Environment\n\n" + "\n".join(f"- {k}: {v}" for k, v in env.items()) + "\n"
    md += "\n## Figures\n\n" + "\n".join(f"![{n}](report-{n}.png)" for n in images) + "\n"
    body = [
        f"<h1>Scaling report</h1><p>{len(report.runs)} run(s), "
        f"{int((report.runs['state'] == 'COMPLETED').sum())} completed.</p>"
    ]
    body.append("<pre>" + html.escape(report.markdown) + "</pre>")
    for name, data in images.items():
        body.append(
            f"<h2>{html.escape(name.replace('_', ' '))}</h2><img alt='{name}' src='data:image/png;base64,{data}'>"
        )
    body.append(
        "<h2>Environment</h2><table>"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in env.items())
        + "</table>"
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>hpcdl scaling report</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}pre{font-size:12px;overflow-x:auto}"
        "img{max-width:100%}th{text-align:left;padding-right:1em}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
    html_path, md_path = out / "report.html", out / "report.md"
    write_atomic(html_path, page)
    write_atomic(md_path, md)
    written = [html_path, md_path]
    for name, data in images.items():
        path = out / f"report-{name}.png"
        tmp = out / f".report-{name}.png.tmp"
        tmp.write_bytes(base64.b64decode(data))
        tmp.replace(path)
        written.append(path)
    return written
