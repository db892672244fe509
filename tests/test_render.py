"""The rendered job scripts, compared with recorded golden files.

If a change to the scripts is intended, delete the golden file (or run with HPCDL_UPDATE_GOLDEN=1):
the test records it again, and the diff shows up in review.
"""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from hpc_dl import profiles
from hpc_dl.errors import TemplateError
from hpc_dl.render import RenderContext, render, sbatch_options
from hpc_dl.spec import JobSpec

GOLDEN = Path(__file__).parent / "golden"
NASTY = "\"; rm -rf ~; echo '$(id)"
CTX = RenderContext(run_dir=Path("/scratch/hpcdl/runs/golden/RUN-ID"), run_id="RUN-ID", python="/opt/venv/bin/python")

CASES = {
    "local-1x2": ("local", JobSpec(nodes=1, gpus=2, epochs=3, train_samples=4096)),
    "discovery-1x2": (
        "discovery",
        JobSpec(
            nodes=1,
            gpus=2,
            partition="multigpu",
            model="resnet18",
            dataset="cifar10",
            data_root="/scratch/$USER/cifar 10",
            epochs=5,
            job_name=NASTY,
        ),
    ),
    "discovery-2x4": (
        "discovery",
        JobSpec(
            nodes=2,
            gpus=4,
            partition="multigpu",
            gpu_type="a100",
            model="resnet50",
            dataset="imagefolder",
            data_root="/scratch/asl",
            time_limit=12 * 60,
            precision="fp16",
            sbatch={"account": "proj; id"},
            exclusive=True,  # whole nodes: a bare #SBATCH --exclusive
        ),
    ),
}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.sh"
    if os.environ.get("HPCDL_UPDATE_GOLDEN") or not path.exists():
        path.write_text(text)
        pytest.skip(f"recorded {path}; commit it")
    assert text == path.read_text(), f"{path} differs: delete it if this change is intended"


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_script_matches_golden(name):
    profile_name, spec = CASES[name]
    check_golden(name, render(spec, profiles.load(profile_name), CTX).script)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_script_is_valid_bash(name):
    profile_name, spec = CASES[name]
    script = render(spec, profiles.load(profile_name), CTX).script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_user_values_are_quoted_once_and_survive_the_shell():
    spec = CASES["discovery-1x2"][1]
    script = render(spec, profiles.load("discovery"), CTX).script
    assert f"#SBATCH --job-name={shlex.quote(NASTY)}\n" in script
    assert "--data-root '/scratch/$USER/cifar 10'" in script
    # what bash sees is the user's exact string: the sbatch header line, parsed like a shell word
    header = next(line for line in script.splitlines() if line.startswith("#SBATCH --job-name="))
    assert shlex.split(header.split("=", 1)[1]) == [NASTY]


def test_sbatch_options_are_one_sorted_table():
    spec = CASES["discovery-2x4"][1]
    assert sbatch_options(spec, profiles.load("discovery")) == {
        "account": "proj; id",
        "cpus-per-task": "16",
        "exclusive": "",  # a flag: `#SBATCH --exclusive`, submitit's exclusive=True
        "gres": "gpu:a100:4",
        "job-name": "hpcdl-ddp",
        "nodes": "2",
        "ntasks-per-node": "1",
        "partition": "multigpu",
        "signal": "B:USR1@300",
        "time": "12:00:00",
    }


def test_local_has_no_partition_or_gres_and_standalone_torchrun():
    r = render(JobSpec(gpus=2), profiles.load("local"), CTX)
    assert r.executor == "local"
    assert "partition" not in r.sbatch and "gres" not in r.sbatch
    assert r.parameters == {"tasks_per_node": 1, "timeout_min": 60, "gpus_per_node": 2}
    assert "-m torch.distributed.run --standalone --nnodes=1 --nproc-per-node=2" in r.script
    assert "srun" not in r.script


def test_multi_node_uses_srun_one_task_per_node_and_c10d_on_first_host():
    script = render(CASES["discovery-2x4"][1], profiles.load("discovery"), CTX).script
    assert 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in script
    assert "rdzv_port=$(( 20000 + SLURM_JOB_ID % 20000 ))" in script
    assert "srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --kill-on-bad-exit=1" in script
    assert '--rdzv-backend=c10d --rdzv-endpoint="${head_node}:${rdzv_port}" --rdzv-id="$SLURM_JOB_ID"' in script


def test_user_templates_win(tmp_path):
    (tmp_path / "torchrun.sh.j2").write_text(
        '{% extends "base.sh.j2" %}{% block launch %}echo mine {{ gpus }}\n{% endblock %}'
    )
    ctx = RenderContext(CTX.run_dir, CTX.run_id, CTX.python, templates=tmp_path)
    assert render(JobSpec(), profiles.load("local"), ctx).script.endswith("# ---- [launch] ddp\necho mine 1\n")


def test_template_with_an_unknown_variable(tmp_path):
    (tmp_path / "torchrun.sh.j2").write_text(
        '{% extends "base.sh.j2" %}\n{% block launch %}\necho {{ no_such_thing }}\n{% endblock %}\n'
    )
    ctx = RenderContext(CTX.run_dir, CTX.run_id, CTX.python, templates=tmp_path)
    with pytest.raises(TemplateError) as info:
        render(JobSpec(), profiles.load("local"), ctx)
    assert str(info.value).startswith(f"{tmp_path}/torchrun.sh.j2:3: 'no_such_thing' is undefined (variables: ")


def test_template_syntax_error(tmp_path):
    (tmp_path / "torchrun.sh.j2").write_text("{% if %}\n")
    ctx = RenderContext(CTX.run_dir, CTX.run_id, CTX.python, templates=tmp_path)
    with pytest.raises(TemplateError) as info:
        render(JobSpec(), profiles.load("local"), ctx)
    assert str(info.value) == (
        f"{tmp_path}/torchrun.sh.j2:1: template syntax error: Expected an expression, got 'end of statement block'"
    )


def test_missing_templates_folder(tmp_path):
    ctx = RenderContext(CTX.run_dir, CTX.run_id, CTX.python, templates=tmp_path / "nope")
    with pytest.raises(TemplateError) as info:
        render(JobSpec(), profiles.load("local"), ctx)
    assert str(info.value) == f"templates folder '{tmp_path}/nope' does not exist"
