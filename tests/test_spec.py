import pytest

from hpc_dl.errors import SpecError
from hpc_dl.spec import JobSpec
from hpc_dl.units import format_time, parse_time


def test_defaults_are_valid():
    spec = JobSpec()
    assert (spec.strategy, spec.nodes, spec.gpus, spec.world_size, spec.name) == ("ddp", 1, 1, 1, "hpcdl-ddp")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"strategy": "magic"},
            "unknown strategy 'magic' (choose from ddp, dp, fsdp, hogwild, horovod, kfold, pipeline, psgd)",
        ),
        (
            {"model": "resnet99"},
            "unknown model 'resnet99' (choose from alexnet, "
            "fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn, googlenet, gpt-medium, gpt-small, gpt-tiny, "
            "inception_v3, mnist-cnn, "
            "mobilenet_v2, resnet18, resnet50, vgg11, vgg16, vgg19)",
        ),
        (
            {"dataset": "imagenet"},
            "unknown dataset 'imagenet' (choose from cifar10, coco, digits, fashion-mnist, imagefolder, "
            "mnist, synthetic, synthetic-text, text)",
        ),
        ({"precision": "fp8"}, "invalid precision 'fp8' (choose from fp32, bf16, fp16)"),
        ({"nodes": 0}, "invalid nodes: 0 (must be an integer >= 1)"),
        ({"gpus": -1}, "invalid gpus: -1 (must be an integer >= 1)"),
        ({"epochs": 0}, "invalid epochs: 0 (must be an integer >= 1)"),
        ({"batch_size": 0}, "invalid batch-size: 0 (must be an integer >= 1)"),
        ({"train_samples": 0}, "invalid train-samples: 0 (must be an integer >= 1)"),
        ({"cpus_per_task": 0}, "invalid cpus-per-task: 0 (must be an integer >= 1)"),
        ({"seed": -3}, "invalid seed: -3 (must be an integer >= 0)"),
        ({"lr": 0.0}, "invalid lr: 0.0 (must be a number > 0)"),
        ({"dataset": "cifar10"}, "dataset 'cifar10' needs --data-root (a folder that already holds it)"),
        ({"dataset": "imagefolder"}, "dataset 'imagefolder' needs --data-root (a folder that already holds it)"),
        ({"job_name": "a\nb"}, "invalid job name: 'a\\nb' (must be non-empty, with no control characters)"),
        (
            {"sbatch": {"Bad Key": "x"}},
            "invalid sbatch option 'Bad Key' (use a long option name such as account or qos)",
        ),
    ],
)
def test_invalid_fields_are_one_line_naming_field_value_and_allowed(changes, message):
    with pytest.raises(SpecError) as info:
        JobSpec(**changes)
    assert str(info.value) == message


def test_shell_metacharacters_in_job_name_are_accepted():
    name = "\"; rm -rf ~; echo '$(id)"
    assert JobSpec(job_name=name).name == name


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("30", 30),
        ("90", 90),
        ("10:30", 11),
        ("01:00:00", 60),
        ("1-00", 1440),
        ("1-02:30", 1590),
        ("2-00:00:00", 2880),
        (45, 45),
    ],
)
def test_parse_time_accepts_slurm_formats(text, minutes):
    assert parse_time(text) == minutes


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "-5", "0"])
def test_parse_time_rejects_the_rest(text):
    with pytest.raises(SpecError, match=r"^invalid time limit: "):
        parse_time(text)


def test_format_time():
    assert [format_time(m) for m in (1, 60, 90, 1440, 1590)] == [
        "00:01:00",
        "01:00:00",
        "01:30:00",
        "1-00:00:00",
        "1-02:30:00",
    ]


def test_spec_round_trips_through_dict():
    spec = JobSpec(nodes=2, gpus=4, sbatch={"account": "proj"}, job_name="x y")
    assert JobSpec.from_dict(spec.to_dict()) == spec


def test_unknown_spec_field():
    with pytest.raises(SpecError) as info:
        JobSpec.from_dict({"nodez": 2})
    assert str(info.value).startswith(
        "unknown spec field 'nodez' (known: activation_checkpointing, average, backward_passes, batch_size, "
    )
