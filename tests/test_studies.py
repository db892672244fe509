"""Study files: the shipped seed studies load and plan; bad files are one line."""

import pytest

from hpc_dl import studies
from hpc_dl.errors import UsageError
from tests.conftest import run_folders


@pytest.mark.parametrize("name", sorted(studies.available()))
def test_every_shipped_study_plans_on_the_local_profile(hpcdl, runs_root, name):
    result = hpcdl("study", "run", name, "--profile", "local", "--dry-run")
    assert result.exit_code == 0, result.output
    study = studies.load(name)
    assert result.stdout.splitlines()[0] == f"study {study.name}: {study.claim}"
    assert result.stdout.splitlines()[1].startswith(f"# {study.kind}: ")
    assert run_folders(runs_root) == []


def test_seed_002_is_psgd_over_p_and_both_averaging_modes(hpcdl):
    lines = hpcdl("study", "run", "seed-002-psgd", "--profile", "local", "--dry-run").stdout.splitlines()
    points = [line for line in lines if line.startswith("# [")]
    assert (
        points[0] == "# [0] psgd 1x1 average=once repeat 1" and points[-1] == "# [7] psgd 1x4 average=every:10 repeat 1"
    )


def test_seed_001_pipeline_is_ddp_pipeline_and_fsdp_on_two_gpt_sizes(hpcdl):
    result = hpcdl("study", "run", "seed-001-pipeline", "--profile", "local", "--dry-run")
    points = [line.split(" repeat")[0] for line in result.stdout.splitlines() if line.startswith("# [")]
    shapes = [f"{s} 1x{g}" for s in ("ddp", "pipeline", "fsdp") for g in (1, 2) if (s, g) != ("pipeline", 1)]
    expected = [f"{shape} model={m}" for shape in shapes for m in ("gpt-tiny", "gpt-small")]
    assert points == [f"# [{i}] {p}" for i, p in enumerate(expected)]
    assert result.stderr.splitlines() == [  # the whole model on one worker is ddp 1x1: a pipeline has 2 stages
        f"skipped pipeline 1x1 model={m}: pipeline needs at least 2 stages, so at least 2 workers (got 1)"
        for m in ("gpt-tiny", "gpt-small")
    ]


def test_study_list(hpcdl):
    lines = hpcdl("study", "list").stdout.splitlines()
    assert [line.split()[0] for line in lines] == sorted(studies.available())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: grid\n", "kind 'grid' is invalid (choose from sweep, kfold)"),
        (
            "kind: sweep\nfolds: 3\n",
            "unknown field 'folds' for a sweep study (known: claim, description, gpus, kind, "
            "name, nodes, repeats, skip_invalid, spec, strategy, throttle, vary)",
        ),
        ("spec: [1, 2]\n", "spec must be a mapping of JobSpec fields"),
        ("name: x\nspec: {model: [\n", None),
    ],
    ids=["kind", "unknown-field", "spec", "malformed"],
)
def test_bad_study_files_are_one_line(tmp_path, hpcdl, text, message):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        studies.load(str(path))
    if message is None:
        assert str(info.value).startswith(f"{path}:3: malformed YAML: ")
    else:
        assert str(info.value) == f"{path}: {message}"
    result = hpcdl("study", "run", str(path), "--profile", "local")
    assert result.exit_code == 2 and result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1


def test_a_bad_spec_field_in_a_study_is_the_spec_error(tmp_path, hpcdl):
    path = tmp_path / "study.yaml"
    path.write_text("strategy: [ddp]\ngpus: [1]\nspec: {model: resnet99}\n")
    result = hpcdl("study", "run", str(path), "--profile", "local")
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: unknown model 'resnet99' (choose from alexnet, "
        "fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn, googlenet, gpt-medium, gpt-small, gpt-tiny, "
        "inception_v3, mnist-cnn, mobilenet_v2, "
        "resnet18, resnet50, vgg11, vgg16, vgg19)\n",
    )
