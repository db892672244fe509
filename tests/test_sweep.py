import pytest

from hpc_dl import profiles
from hpc_dl.errors import SpecError, UsageError
from hpc_dl.spec import JobSpec
from hpc_dl.submit import plan_sweep
from hpc_dl.sweep import expand, largest, parse_list
from tests.conftest import run_folders


def test_expand_is_the_cross_product_with_repeats():
    points = expand(JobSpec(epochs=2), ["ddp"], [1, 2], [1, 2, 4], 2)
    assert [(p.spec.nodes, p.spec.gpus, p.repeat) for p in points] == [
        (1, 1, 1),
        (1, 1, 2),
        (1, 2, 1),
        (1, 2, 2),
        (1, 4, 1),
        (1, 4, 2),
        (2, 1, 1),
        (2, 1, 2),
        (2, 2, 1),
        (2, 2, 2),
        (2, 4, 1),
        (2, 4, 2),
    ]
    assert {p.spec.epochs for p in points} == {2}


def test_expand_drops_duplicates_and_validates_every_point():
    assert len(expand(JobSpec(), ["ddp", "ddp"], [1, 1], [2], 1)) == 1
    with pytest.raises(SpecError) as info:
        expand(JobSpec(), ["ddp"], [1], [1, 0], 1)
    assert str(info.value) == "invalid gpus: 0 (must be an integer >= 1)"
    with pytest.raises(SpecError) as info:
        expand(JobSpec(), ["ddp", "magic"], [1], [1], 1)
    assert (
        str(info.value)
        == "unknown strategy 'magic' (choose from ddp, dp, fsdp, hogwild, horovod, kfold, pipeline, psgd)"
    )
    with pytest.raises(UsageError) as info:
        expand(JobSpec(), ["ddp"], [1], [1], 0)
    assert str(info.value) == "invalid repeats: 0 (must be an integer >= 1)"


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("1,,2", int, "invalid --gpus: '1,,2' (use a comma-separated list, e.g. 1,2,4)"),
        ("1,two", int, "invalid --gpus: '1,two' (use a comma-separated list of integers, e.g. 1,2,4)"),
    ],
)
def test_parse_list_errors(text, kind, message):
    with pytest.raises(UsageError) as info:
        parse_list(text, "--gpus", kind)
    assert str(info.value) == message


def test_the_array_gets_the_largest_shape():
    points = expand(JobSpec(partition="multigpu", time_limit=30), ["ddp"], [1, 2], [1, 4], 1)
    assert largest(points).nodes == 2 and largest(points).gpus == 4
    assert plan_sweep(points, profiles.load("discovery")) == {
        "cpus-per-task": "16",
        "gres": "gpu:v100-sxm2:4",
        "job-name": "hpcdl-ddp",
        "nodes": "2",
        "ntasks-per-node": "1",
        "partition": "multigpu",
        "signal": "B:USR1@300",
        "time": "00:30:00",
    }


def test_every_point_is_checked_against_the_cluster():
    points = expand(JobSpec(), ["ddp"], [1, 2], [1], 1)
    with pytest.raises(SpecError) as info:
        plan_sweep(points, profiles.load("local"))
    assert str(info.value).startswith("invalid nodes: 2 (profile 'local' runs on this machine only")


def test_sweep_dry_run(hpcdl, runs_root):
    result = hpcdl(
        "sweep",
        "--profile",
        "discovery",
        "--partition",
        "multigpu",
        "--nodes",
        "1,2",
        "--gpus",
        "2,4",
        "--repeats",
        "2",
        "--throttle",
        "3",
        "--study",
        "s",
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "# sweep: 8 point(s) as one job array, at most 3 at once (dry run: nothing was submitted)"
    assert lines[1:10] == [
        "# every task's allocation (discovery):",
        "#   cpus-per-task: 16",
        "#   gres: gpu:v100-sxm2:4",
        "#   job-name: hpcdl-ddp",
        "#   nodes: 2",
        "#   ntasks-per-node: 1",
        "#   partition: multigpu",
        "#   signal: B:USR1@300",
        "#   time: 01:00:00",
    ]
    assert lines[10] == "# [0] ddp 1x2 repeat 1" and lines[17] == "# [7] ddp 2x4 repeat 2"
    assert lines[18] == "# then: collect into results/s"
    assert not runs_root.exists()


def test_sweep_probe_puts_one_probe_per_multi_worker_shape_first_and_keeps_the_allocation(hpcdl, runs_root):
    result = hpcdl(
        "sweep", "--profile", "discovery", "--partition", "multigpu", "--nodes", "1,2", "--gpus", "1,2", "--time", "20",
        "--study", "s", "--probe", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "# sweep: 7 point(s) as one job array, at most 4 at once (dry run: nothing was submitted)"
    assert "#   job-name: hpcdl-ddp" in lines and "#   time: 00:20:00" in lines  # the points' name and time limit
    assert lines[-8:] == [
        "# [0] probe 1x2",
        "# [1] probe 2x1",
        "# [2] probe 2x2",
        "# [3] ddp 1x1 repeat 1",
        "# [4] ddp 1x2 repeat 1",
        "# [5] ddp 2x1 repeat 1",
        "# [6] ddp 2x2 repeat 1",
        "# then: collect into results/s",
    ]
    assert not runs_root.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpus", "1,x"], "Error: invalid --gpus: '1,x' (use a comma-separated list of integers, e.g. 1,2,4)"),
        (
            ["--nodes", "1,2"],
            "Error: invalid nodes: 2 (profile 'local' runs on this machine only: use --nodes 1, or a "
            "SLURM profile for more)",
        ),
        (["--repeats", "0"], "Error: invalid repeats: 0 (must be an integer >= 1)"),
        (
            ["--strategy", "ddp,nope"],
            "Error: unknown strategy 'nope' (choose from ddp, dp, fsdp, hogwild, horovod, kfold, pipeline, psgd)",
        ),
        (["--throttle", "0"], "Error: invalid throttle: 0 (must be an integer >= 1)"),
        (
            ["--gpus", "1", "--probe"],
            "Error: nothing to probe: every point of the sweep has 1 worker (--probe needs a shape of 2 or more)",
        ),
    ],
)
def test_sweep_bad_input_is_one_line_and_leaves_nothing(hpcdl, runs_root, args, message):
    result = hpcdl("sweep", "--profile", "local", *args)
    assert (result.exit_code, result.stderr, result.stdout) == (2, message + "\n", "")
    assert run_folders(runs_root) == []


@pytest.mark.parametrize(
    "command",
    [["sweep"], ["kfold"], ["study", "run", "seed-000-dp-vs-ddp"], ["rerun", "nothing-here"]],
    ids=lambda c: c[0],
)
@pytest.mark.parametrize("throttle", ["0", "-1"])
def test_a_throttle_below_one_is_refused_before_anything_dry_run_too(hpcdl, runs_root, command, throttle):
    result = hpcdl(*command, "--profile", "local", "--throttle", throttle, "--dry-run")
    message = f"Error: invalid throttle: {throttle} (must be an integer >= 1)\n"
    assert (result.exit_code, result.stderr, result.stdout) == (2, message, "")
    assert run_folders(runs_root) == []


def test_vary_adds_axes_with_typed_values():
    from hpc_dl.sweep import parse_vary

    vary = parse_vary(["batch_size=32,64", "compression=none,fp16", "lr=0.01,0.1"])
    assert vary == {"batch_size": [32, 64], "compression": ["none", "fp16"], "lr": [0.01, 0.1]}
    points = expand(
        JobSpec(strategy="horovod"),
        ["horovod"],
        [1],
        [1, 2],
        1,
        parse_vary(vary_items := ["batch_size=32,64", "compression=none,fp16"]),
    )
    assert len(vary_items) == 2
    assert [(p.spec.gpus, p.spec.batch_size, p.spec.compression) for p in points] == [
        (1, 32, "none"),
        (1, 32, "fp16"),
        (1, 64, "none"),
        (1, 64, "fp16"),
        (2, 32, "none"),
        (2, 32, "fp16"),
        (2, 64, "none"),
        (2, 64, "fp16"),
    ]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "gpus=1,2",
            "invalid --vary 'gpus=1,2' (use FIELD=V1,V2 with FIELD one of activation_checkpointing, average, "
            "backward_passes, batch_size, compression, cpus_per_task, data_root, dataset, device, epochs, gpu_type, "
            "image_size, loader_workers, lr, mem, microbatches, model, partition, precision, scheduler, seed, stages, "
            "test_samples, time_limit, train_samples)",
        ),
        ("batch_size=a", "invalid --vary batch_size: 'a' (use a comma-separated list of integers, e.g. 1,2,4)"),
        ("lr=fast", "invalid --vary 'lr=fast' (use numbers, e.g. lr=0.01,0.1)"),
        (
            "activation-checkpointing=on",
            "invalid --vary activation_checkpointing: 'on' (use true and false, e.g. true,false)",
        ),
    ],
)
def test_vary_bad_input(item, message):
    from hpc_dl.sweep import parse_vary

    with pytest.raises(UsageError) as info:
        parse_vary([item])
    assert str(info.value) == message


def test_skip_invalid_leaves_out_what_a_strategy_cannot_run_and_says_why():
    from hpc_dl.sweep import expand_with_skips

    points, skipped = expand_with_skips({}, ["pipeline", "ddp"], [1], [1, 2], 1, skip_invalid=True)
    assert [(p.spec.strategy, p.spec.gpus) for p in points] == [("pipeline", 2), ("ddp", 1), ("ddp", 2)]
    assert skipped == ["pipeline 1x1: pipeline needs at least 2 stages, so at least 2 workers (got 1)"]
    with pytest.raises(SpecError):
        expand_with_skips({}, ["pipeline"], [1], [1, 2], 1)
    with pytest.raises(UsageError) as info:
        expand_with_skips({}, ["pipeline"], [1], [1], 1, skip_invalid=True)
    assert str(info.value) == (
        "every point of the sweep is invalid: pipeline 1x1: pipeline needs at least 2 stages, "
        "so at least 2 workers (got 1)"
    )


def test_sweep_skip_invalid_on_the_command_line(hpcdl):
    result = hpcdl(
        "sweep",
        "--profile",
        "local",
        "--strategy",
        "pipeline,ddp",
        "--gpus",
        "1,2",
        "--skip-invalid",
        "--vary",
        "batch_size=32,64",
        "--dry-run",
    )
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "skipped pipeline 1x1 batch_size=32: pipeline needs at least 2 stages, so at least 2 workers (got 1)",
        "skipped pipeline 1x1 batch_size=64: pipeline needs at least 2 stages, so at least 2 workers (got 1)",
    ]
    assert "# [0] pipeline 1x2 batch_size=32 repeat 1" in result.stdout.splitlines()
