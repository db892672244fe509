import shutil
from pathlib import Path

import pytest

from hpc_dl import profiles
from hpc_dl.errors import ProfileError, SpecError
from hpc_dl.spec import JobSpec


def write_profile(tmp_path: Path, name: str, text: str) -> Path:
    folder = Path(profiles.user_dir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


GOOD = """\
name: mine
scheduler: slurm
partitions:
  gpu:
    max_nodes: 2
    gpus_per_node: 4
    max_time: "04:00:00"
    gpu_types: [a100]
"""


def test_shipped_profiles_load():
    local, disc = profiles.load("local"), profiles.load("discovery")
    assert (local.scheduler, local.default_partition, local.partitions["local"].max_nodes) == ("local", "local", 1)
    assert disc.scheduler == "slurm"
    assert sorted(disc.partitions) == ["gpu", "multigpu", "short"]
    assert disc.partitions["multigpu"].gpus_per_node == 4
    assert disc.partitions["gpu"].max_time == 8 * 60
    assert disc.partitions["short"].gpus_per_node == 0
    assert disc.modules == ("cuda/12.1", "anaconda3/2022.05")


def test_user_profile_shadows_shipped_one(tmp_path):
    path = write_profile(tmp_path, "local", GOOD.replace("name: mine", "name: local"))
    assert profiles.available()["local"] == path
    assert profiles.load("local").scheduler == "slurm"


def test_default_is_local_without_sbatch(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert profiles.default_name() == "local"


def test_default_with_sbatch_is_configured_one(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/sbatch")
    assert profiles.default_name() == "discovery"
    monkeypatch.setenv("HPCDL_PROFILE", "mine")
    assert profiles.default_name() == "mine"


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ProfileError) as info:
        profiles.load("nope")
    assert str(info.value) == (
        f"unknown profile 'nope' (choose from discovery, local; user profiles go in {profiles.user_dir()})"
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "name: x\nscheduler: slurm\npartitions: [a, b\n",
            4,
            "malformed YAML: expected ',' or ']', but got '<stream end>'",
        ),
        (
            "name: x\nscheduler: pbs\npartitions: {gpu: {max_nodes: 1, gpus_per_node: 1, max_time: 60}}\n",
            2,
            "scheduler: 'pbs' is invalid (choose from local, slurm)",
        ),
        (
            "name: x\nscheduler: slurm\ncolour: blue\n"
            "partitions: {gpu: {max_nodes: 1, gpus_per_node: 1, max_time: 60}}\n",
            3,
            "colour: unknown field (known: cpus_per_task, default_partition, description, env, exclusive, modules, "
            "name, partitions, python, pythonpath, sbatch, scheduler, setup)",
        ),
        (
            "name: x\nscheduler: slurm\npartitions:\n  gpu:\n"
            "    max_nodes: two\n    gpus_per_node: 1\n    max_time: 60\n",
            5,
            "partitions.gpu.max_nodes: 'two' is invalid (must be an integer >= 1)",
        ),
        (
            "name: x\nscheduler: slurm\npartitions:\n  gpu:\n"
            "    max_nodes: 1\n    gpus_per_node: 1\n    max_time: soon\n",
            7,
            "partitions.gpu.max_time: 'soon' is invalid (must be a time such as 60, 08:00:00 or 1-00:00:00)",
        ),
        (
            "name: x\nscheduler: slurm\npartitions:\n  gpu:\n    max_nodes: 1\n    gpus_per_node: 1\n",
            4,
            "partitions.gpu.max_time: is required",
        ),
        (
            "name: x\nscheduler: slurm\ndefault_partition: big\npartitions:\n  gpu: {max_nodes: 1, gpus_per_node: 1, "
            "max_time: 60}\n",
            3,
            "default_partition: 'big' is invalid (choose from gpu)",
        ),
        (
            "name: x\nscheduler: slurm\nenv:\n  'BAD-NAME': 1\npartitions: {gpu: {max_nodes: 1, gpus_per_node: 1, "
            "max_time: 60}}\n",
            4,
            "env.BAD-NAME: is invalid (must be a shell variable name)",
        ),
        ("- just\n- a list\n", None, "profile: ['just', 'a list'] is invalid (must be a mapping of fields)"),
    ],
)
def test_bad_profiles_name_file_line_field(tmp_path, text, line, message):
    path = write_profile(tmp_path, "bad", text)
    with pytest.raises(ProfileError) as info:
        profiles.load("bad")
    where = f"{path}:{line}" if line else f"{path}"
    assert str(info.value) == f"{where}: {message}"


@pytest.mark.parametrize(
    ("profile", "changes", "message"),
    [
        (
            "local",
            {"nodes": 2},
            "invalid nodes: 2 (profile 'local' runs on this machine only: use --nodes 1, or a SLURM profile for more)",
        ),
        ("local", {"gpus": 9}, "invalid gpus: 9 (partition 'local' of profile 'local' has 8 GPUs per node)"),
        (
            "local",
            {"precision": "fp16"},
            "invalid precision: 'fp16' (partition 'local' has no GPUs; use fp32 or bf16 on CPUs)",
        ),
        (
            "discovery",
            {"gpus": 2},
            "invalid gpus: 2 (partition 'gpu' of profile 'discovery' has 1 GPUs per node); it fits partition "
            "'multigpu': add --partition multigpu",
        ),
        (
            "discovery",
            {"nodes": 2},
            "invalid nodes: 2 (partition 'gpu' of profile 'discovery' allows at most 1); it fits partition 'multigpu': "
            "add --partition multigpu",
        ),
        (
            "discovery",
            {"partition": "huge"},
            "unknown partition 'huge' for profile 'discovery' (choose from gpu, multigpu, short)",
        ),
        (
            "discovery",
            {"time_limit": 9 * 60},
            "invalid time limit: 09:00:00 (partition 'gpu' allows at most 08:00:00); it fits partition 'multigpu': "
            "add --partition multigpu",
        ),
        (
            "discovery",
            {"gpu_type": "h100"},
            "invalid gpu type: 'h100' (partition 'gpu' has v100-sxm2, v100-pcie, a100, t4, p100, k80)",
        ),
        (
            "discovery",
            {"partition": "short", "gpu_type": "a100"},
            "invalid gpu type: 'a100' (partition 'short' has none: it has no GPUs)",
        ),
    ],
)
def test_spec_checked_against_the_cluster(profile, changes, message):
    with pytest.raises(SpecError) as info:
        profiles.load(profile).check(JobSpec(**changes))
    assert str(info.value) == message


def test_cpu_partition_takes_worker_processes():
    part = profiles.load("discovery").check(JobSpec(partition="short", nodes=2, gpus=3))
    assert part.name == "short"


@pytest.fixture
def one_gpu(monkeypatch):
    """This machine as if it had one GPU, through the function the local profile asks."""
    from hpc_dl import devices

    monkeypatch.setattr(devices, "visible_gpus", lambda: ["0"])


def test_local_refuses_more_gpus_than_are_visible(hpcdl, runs_root, one_gpu):
    result = hpcdl("submit", "--profile", "local", "--gpus", "3", "--dry-run")
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: invalid gpus: 3 (this machine has 1 visible GPU: use --gpus 1, or --device cpu for 3 CPU "
        "worker processes)\n",
    )


def test_local_with_a_gpu_allows_fp16_and_cpu_workers_on_request(hpcdl, runs_root, one_gpu):
    assert hpcdl("submit", "--profile", "local", "--precision", "fp16", "--dry-run").exit_code == 0
    result = hpcdl("submit", "--profile", "local", "--device", "cpu", "--gpus", "3", "--dry-run")
    assert result.exit_code == 0 and "export CUDA_VISIBLE_DEVICES=  # --device cpu" in result.stdout
    result = hpcdl("submit", "--profile", "local", "--device", "cpu", "--precision", "fp16", "--dry-run")
    assert (
        result.stderr == "Error: invalid precision: 'fp16' (the workers are CPU processes; use fp32 or bf16 on CPUs)\n"
    )


def test_without_gpus_fp16_and_device_gpu_are_refused(hpcdl, runs_root, monkeypatch):
    from hpc_dl import devices

    monkeypatch.setattr(devices, "visible_gpus", lambda: [])
    result = hpcdl("submit", "--profile", "local", "--precision", "fp16", "--dry-run")
    assert (
        result.stderr == "Error: invalid precision: 'fp16' (partition 'local' has no GPUs; use fp32 or bf16 on CPUs)\n"
    )
    result = hpcdl("submit", "--profile", "local", "--device", "gpu", "--dry-run")
    assert result.stderr == "Error: invalid device: 'gpu' (this machine has no visible GPU; use --device cpu)\n"


@pytest.mark.parametrize(
    ("user", "gpus", "device", "expected"),
    [(None, 2, "auto", "0,1"), ("2,3", 1, "auto", "2"), ("2,3", 2, "cpu", ""), ("", 2, "auto", None)],
)
def test_local_jobs_pick_their_gpus_from_the_users_set(monkeypatch, user, gpus, device, expected):
    from hpc_dl import devices

    if user is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        monkeypatch.setattr(devices, "visible_gpus", lambda: ["0", "1", "2", "3"])
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", user)
    assert devices.assign(gpus, device) == expected
