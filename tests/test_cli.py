import json
import subprocess
import sys

import pytest

from tests.conftest import run_folders

COMMANDS = [
    ["kfold"],
    ["study"],
    ["study", "list"],
    ["study", "run"],
    ["report"],
    ["compare"],
    [],
    ["submit"],
    ["sweep"],
    ["status"],
    ["logs"],
    ["cancel"],
    ["collect"],
    ["profiles"],
    ["profiles", "list"],
    ["profiles", "show"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "hpcdl")
def test_help_on_every_command(hpcdl, command):
    result = hpcdl(*command, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: hpcdl {' '.join(command)}".rstrip() + " ")


def test_help_and_dry_run_import_no_heavy_module():
    code = (
        "import sys\n"
        "from hpc_dl.cli import cli\n"
        "for args in (['--help'], ['submit', '--help'], ['submit', '--dry-run', '--profile', 'local']):\n"
        "    try:\n"
        "        cli.main(args, prog_name='hpcdl')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'submitit', 'numpy', 'matplotlib') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "HEAVY []"


def test_dry_run_prints_script_and_parameters_and_writes_nothing(hpcdl, runs_root):
    result = hpcdl("submit", "--profile", "local", "--gpus", "2", "--job-name", "my job", "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("#!/bin/bash\n#SBATCH --cpus-per-task=2\n#SBATCH --job-name='my job'\n")
    assert "-m torch.distributed.run --standalone --nnodes=1 --nproc-per-node=2" in out
    tail = out.split("# ---- submission (dry run: nothing was submitted)\n")[1].splitlines()
    assert tail[0].startswith("# run: ") and "-ddp-1x2-" in tail[0]
    assert tail[1] == f"# folder: {runs_root.resolve()}/default/{tail[0][len('# run: ') :]}"
    assert tail[2:] == [
        "# profile: local",
        "# executor: local",
        "#   tasks_per_node: 1",
        "#   timeout_min: 60",
        "#   gpus_per_node: 2",
    ]
    assert not runs_root.exists()


def test_dry_run_on_discovery_prints_sbatch_parameters(hpcdl):
    result = hpcdl(
        "submit", "--profile", "discovery", "--partition", "multigpu", "--nodes", "2", "--gpus", "4", "--dry-run"
    )
    assert result.exit_code == 0, result.output
    tail = result.stdout.split("# executor: slurm\n")[1].splitlines()
    assert tail == [
        "#   cpus-per-task: 16",
        "#   gres: gpu:v100-sxm2:4",
        "#   job-name: hpcdl-ddp",
        "#   nodes: 2",
        "#   ntasks-per-node: 1",
        "#   partition: multigpu",
        "#   signal: B:USR1@300",
        "#   time: 01:00:00",
    ]


BAD_INPUT = [
    (
        ["--strategy", "magic"],
        2,
        "Error: unknown strategy 'magic' (choose from ddp, dp, fsdp, hogwild, horovod, kfold, pipeline, psgd)",
    ),
    (
        ["--model", "resnet99"],
        2,
        "Error: unknown model 'resnet99' (choose from alexnet, "
        "fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn, googlenet, gpt-medium, gpt-small, gpt-tiny, "
        "inception_v3, "
        "mnist-cnn, mobilenet_v2, resnet18, resnet50, vgg11, vgg16, vgg19)",
    ),
    (
        ["--dataset", "imagenet"],
        2,
        "Error: unknown dataset 'imagenet' (choose from cifar10, coco, digits, fashion-mnist, imagefolder, "
        "mnist, synthetic, synthetic-text, text)",
    ),
    (["--nodes", "0"], 2, "Error: invalid nodes: 0 (must be an integer >= 1)"),
    (["--nodes", "two"], 2, "Error: Invalid value for '--nodes': 'two' is not a valid integer."),
    (["--gpus", "9"], 2, "Error: invalid gpus: 9 (partition 'local' of profile 'local' has 8 GPUs per node)"),
    (
        ["--nodes", "2"],
        2,
        "Error: invalid nodes: 2 (profile 'local' runs on this machine only: use --nodes 1, or a "
        "SLURM profile for more)",
    ),
    (["--dataset", "cifar10"], 2, "Error: dataset 'cifar10' needs --data-root (a folder that already holds it)"),
    (
        ["--image-size", "100000"],
        2,
        "Error: invalid image-size: 100000 (model 'mnist-cnn' takes at most 224: 8x the 28 px side it is built for)",
    ),
    (
        ["--model", "fasterrcnn_resnet50_fpn", "--dataset", "coco", "--image-size", "6401"],
        2,
        "Error: invalid image-size: 6401 (model 'fasterrcnn_resnet50_fpn' takes at most 6400: 8x the 800 px side it "
        "is built for)",
    ),
    (
        ["--time", "soon"],
        2,
        "Error: invalid time limit: 'soon' (use minutes, HH:MM:SS or D-HH:MM:SS, e.g. 30, 01:00:00, 1-00:00:00)",
    ),
    (["--sbatch", "account"], 2, "Error: invalid --sbatch 'account' (use KEY=VALUE, e.g. --sbatch account=myproject)"),
    (
        ["--study", "../up"],
        2,
        "Error: invalid study name '../up' (letters, digits, '.', '_' and '-'; not starting with '.' or '-')",
    ),
    (["--bogus"], 2, "Error: No such option '--bogus'. Did you mean '--gpus'?"),
    (["--sbatch", "nodes=5"], 2, "Error: --sbatch nodes is set by hpcdl from the spec: use --nodes"),
    (
        ["--sbatch", "cpus-per-task=2"],
        2,
        "Error: --sbatch cpus-per-task is set by hpcdl from the spec: use --cpus-per-task",
    ),
    (["--sbatch", "mem=4G"], 2, "Error: --sbatch mem is set by hpcdl from the spec: use --mem"),
    (["--sbatch", "array=0-3"], 2, "Error: --sbatch array is set by hpcdl from the spec: use hpcdl sweep"),
    (["--mem", "lots"], 2, "Error: invalid mem: 'lots' (a size such as 64G, 4000M or 16000)"),
    (["--data-root", "/tmp/no-such-folder-x"], 2, "Error: invalid data root: /tmp/no-such-folder-x does not exist"),
]


def test_data_root_without_class_folders_is_refused(hpcdl, runs_root, tmp_path):
    (tmp_path / "asl").mkdir()
    result = hpcdl("submit", "--profile", "local", "--dataset", "imagefolder", "--data-root", str(tmp_path / "asl"))
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: invalid data root: {tmp_path / 'asl'} has no class folders (imagefolder wants "
        "<root>/<class>/<image> or <root>/train/<class>/<image>)\n",
    )
    assert run_folders(runs_root) == []


def test_a_data_root_the_login_node_cannot_see_is_a_warning(hpcdl, runs_root):
    result = hpcdl("submit", "--profile", "discovery", "--data-root", "/nonexistent-fs/asl", "--dry-run")
    assert result.exit_code == 0
    assert result.stderr == (
        "warning: --data-root /nonexistent-fs/asl is not visible from this machine (/nonexistent-fs is not "
        "mounted here); the job will check it on the node\n"
    )


def test_coco_without_a_data_root_on_slurm_says_where_the_node_makes_it(hpcdl, runs_root):
    detector = ["--model", "fasterrcnn_mobilenet_v3_large_fpn", "--dataset", "coco", "--dry-run"]
    result = hpcdl("submit", "--profile", "discovery", *detector)
    assert result.exit_code == 0
    assert result.stderr == (
        "warning: --dataset coco without --data-root: the job generates it on the node, in the data cache there "
        "($HPCDL_DATA_CACHE, else ~/.cache/hpcdl/datasets), which must be writable; or make it here "
        "(python -m hpc_dl.train.tasks.detection.shapes --out DIR) and pass --data-root DIR\n"
    )
    local = hpcdl("submit", "--profile", "local", *detector)  # this machine is the node: nothing to say
    assert (local.exit_code, local.stderr) == (0, "")


def test_a_relative_data_root_reaches_the_job_absolute(hpcdl, runs_root, tmp_path):
    """The job runs in its run folder: a relative --data-root would name nothing there."""
    (tmp_path / "data" / "asl" / "a").mkdir(parents=True)  # the tests run in tmp_path
    result = hpcdl("submit", "--profile", "local", "--dataset", "imagefolder", "--data-root", "data/asl", "--dry-run")
    assert result.exit_code == 0, result.output
    assert f" --data-root {tmp_path / 'data' / 'asl'} " in result.stdout


def test_a_shape_that_does_not_fit_names_the_partition_where_it_fits(hpcdl, runs_root):
    result = hpcdl("submit", "--profile", "discovery", "--nodes", "2", "--gpus", "4", "--dry-run")
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: invalid nodes: 2 (partition 'gpu' of profile 'discovery' allows at most 1); it fits partition "
        "'multigpu': add --partition multigpu\n",
    )


@pytest.mark.parametrize(("args", "code", "message"), BAD_INPUT, ids=lambda x: str(x)[:40])
@pytest.mark.parametrize("dry_run", [False, True], ids=["submit", "dry-run"])
def test_bad_input_is_one_line_nonzero_and_leaves_nothing(hpcdl, runs_root, args, code, message, dry_run):
    result = hpcdl("submit", "--profile", "local", *args, *(["--dry-run"] if dry_run else []))
    assert (result.exit_code, result.stderr, result.stdout) == (code, message + "\n", "")
    assert run_folders(runs_root) == []


def test_unknown_profile(hpcdl, runs_root):
    result = hpcdl("submit", "--profile", "nope")
    user = runs_root.parent / "user-profiles"
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: unknown profile 'nope' (choose from discovery, local; user profiles go in {user})\n",
    )


def test_malformed_profile_names_file_and_line(hpcdl, runs_root):
    folder = runs_root.parent / "user-profiles"
    folder.mkdir()
    (folder / "broken.yaml").write_text("name: broken\nscheduler: slurm\npartitions:\n  gpu: {max_nodes: [}\n")
    result = hpcdl("submit", "--profile", "broken")
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"Error: {folder}/broken.yaml:4: malformed YAML: expected the node content in a flow node, but found '}}'\n"
        or result.stderr.startswith(f"Error: {folder}/broken.yaml:4: ")
    )
    assert run_folders(runs_root) == []


def test_template_with_unknown_variable(hpcdl, runs_root, tmp_path):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "torchrun.sh.j2").write_text(
        '{% extends "base.sh.j2" %}\n{% block launch %}\n{{ nodez }}\n{% endblock %}\n'
    )
    result = hpcdl("submit", "--profile", "local", "--templates", str(tdir))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {tdir}/torchrun.sh.j2:3: 'nodez' is undefined (variables: ")
    assert result.stderr.count("\n") == 1
    assert run_folders(runs_root) == []


def test_collect_on_a_folder_with_no_runs(hpcdl, tmp_path):
    (tmp_path / "empty").mkdir()
    result = hpcdl("collect", str(tmp_path / "empty"))
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: no runs under {tmp_path / 'empty'} (a run folder holds spec.json)\n",
    )
    result = hpcdl("collect", str(tmp_path / "missing"))
    assert (result.exit_code, result.stderr) == (1, f"Error: no such folder: {tmp_path / 'missing'}\n")


def test_status_logs_cancel_on_unknown_run(hpcdl, runs_root):
    assert hpcdl("status").stdout == f"no runs under {runs_root}\n"
    assert json.loads(hpcdl("status", "--json").stdout) == []
    for cmd in (["logs", "abc"], ["cancel", "abc"], ["status", "abc"]):
        result = hpcdl(*cmd)
        assert (result.exit_code, result.stderr) == (
            2,
            f"Error: no run 'abc' (give a run folder, or a run id under {runs_root})\n",
        )


def test_profiles_list_and_show(hpcdl, runs_root, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    user = runs_root.parent / "user-profiles"
    result = hpcdl("profiles", "list")
    assert result.stdout.splitlines() == [
        f"  discovery        {__import__('hpc_dl').profiles.SHIPPED_DIR}/discovery.yaml",
        f"* local            {__import__('hpc_dl').profiles.SHIPPED_DIR}/local.yaml",
        f"(* = used when --profile is not given; user profiles go in {user})",
    ]
    shown = hpcdl("profiles", "show", "discovery").stdout
    assert shown.startswith("name: discovery\nscheduler: slurm\n")
    assert "  multigpu:\n    max_nodes: 4\n    gpus_per_node: 4\n    max_time: 1-00:00:00\n" in shown
