"""hpcdl doctor: does a profile's environment work? Its set-up lines and hpc_dl.node.checks, run as a short
job on the profile's partition (or here, with --here), read back as one table of what works and what
does not, with the fix to try. The job script is the real jobs' environment (base.sh.j2) with each
set-up line checked on its own (doctor.sh.j2), so what fails here fails the same way in a real job.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from .profiles import ClusterProfile
from .runs import RunDir
from .spec import JobSpec

STUDY = "doctor"
TEMPLATE = "doctor.sh.j2"
SETUP_FIX = "fix the profile's modules/setup lines (hpcdl profiles show {name}), e.g. `module avail`, `conda env list`"
_FAILED = re.compile(r"^HPCDL-DOCTOR failed-line (\d+) status (\d+)$")
_BASH_ERROR = re.compile(r"job\.sh: line (\d+): (.+)$")


def doctor_spec(profile: ClusterProfile, partition: str | None) -> JobSpec:
    """A one-GPU (or one-worker), few-minute job on the partition: enough to see what the node has."""
    spec = JobSpec(partition=partition, time_limit=5, job_name="hpcdl-doctor")
    profile.check(spec)
    return spec


def run_here(profile: ClusterProfile, partition: str | None, runs_root: Path) -> tuple[RunDir, list[dict]]:
    """Write the doctor script into a run folder and run it on this machine, now."""
    from .submit import _prepare

    run, _ = _prepare(doctor_spec(profile, partition), profile, runs_root, STUDY, None, TEMPLATE)
    with open(run.job_log, "wb") as log:
        subprocess.run(["bash", str(run.script)], stdout=log, stderr=subprocess.STDOUT, cwd=run.path, timeout=600)
    return run, read(run, profile)


def submit_and_wait(profile, partition: str | None, runs_root: Path, timeout_s: float) -> tuple[RunDir, list[dict]]:
    """Submit the doctor job through the profile's backend and wait for it."""
    from . import control
    from .submit import submit

    s = submit(doctor_spec(profile, partition), profile, runs_root, STUDY, template=TEMPLATE)
    state = control.wait(s.run, timeout_s=timeout_s)
    rows = read(s.run, profile)
    if not control.is_terminal(state) or not any(r["check"] == "python" for r in rows):
        rows.insert(0, {"check": "job", "ok": False, "detail": f"job {s.job_id} {state}", "fix": _job_fix(state)})
    return s.run, rows


def _job_fix(state: str) -> str:
    if state in ("PENDING", "CONFIGURING"):
        return "still waiting in the queue: run hpcdl doctor again later, or name a partition with free nodes"
    return "see the job's log (hpcdl logs RUN)"


def read(run: RunDir, profile: ClusterProfile) -> list[dict]:
    """The doctor's table from the job's log: one row per failed set-up line, then one per check."""
    text = run.job_log.read_text(errors="replace") if run.job_log.exists() else ""
    script = run.script.read_text().splitlines()
    errors: dict[int, str] = {}
    rows, checks, previous = [], [], ""
    for line in text.splitlines():
        if m := _BASH_ERROR.search(line):
            errors.setdefault(int(m[1]), m[2].strip())
        elif m := _FAILED.match(line.strip()):
            n = int(m[1])
            source = script[n - 1].split(" || echo")[0].strip() if n <= len(script) else "?"
            said = errors.get(n) or previous[:200] or f"exit status {m[2]}"  # bash's words, else the program's
            detail = f"job.sh line {n}: {source}: {said}"
            rows.append({"check": "setup", "ok": False, "detail": detail, "fix": SETUP_FIX.format(name=profile.name)})
        elif line.startswith("HPCDL-CHECK "):
            checks.append(json.loads(line[len("HPCDL-CHECK ") :]))
        previous = "" if line.startswith("HPCDL-") else line.strip()
    if not rows:
        n = len(profile.modules) + len(profile.setup)
        rows.append({"check": "setup", "ok": True, "detail": f"{n} set-up line(s) ran", "fix": ""})
    return rows + checks
