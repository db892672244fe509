"""Language modelling: the three model sizes, byte blocks and the text data set, pipeline stages, the
strategies that refuse a language model, and (slow) gpt-tiny really trained on synthetic-text by every
strategy that can, then collected."""

import json
import math
import os
import subprocess

import pytest
import torch

from hpc_dl import catalog, preflight, profiles
from hpc_dl.errors import SpecError
from hpc_dl.spec import JobSpec
from hpc_dl.train import tasks
from hpc_dl.train.data import DataError
from hpc_dl.train.tasks.language import data, model
from hpc_dl.train.tasks.language.train import perplexity
from tests.test_strategies import HOROVOD

# (layers, heads, width, context, parameters at least, at most)
SIZES = {
    "gpt-tiny": (4, 4, 128, 64, 0.5e6, 1.5e6),
    "gpt-small": (8, 8, 512, 256, 20e6, 30e6),
    "gpt-medium": (16, 12, 768, 512, 100e6, 140e6),
}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_model_sizes(name):
    layers, heads, width, context, low, high = SIZES[name]
    with torch.device("meta"):  # counted, never allocated
        gpt = model.build_model(name)
    count = sum(p.numel() for p in gpt.parameters())
    assert (gpt.layers, gpt.context, gpt.wte.shape) == (layers, context, (256, width))
    assert model.SIZES[name] == model.Size(layers, heads, width)
    assert count == model.SIZES[name].parameters(context) and low <= count <= high
    assert catalog.MODELS[name].task == "language" and catalog.MODELS[name].splittable


def test_tiny_forward_is_causal_and_tied():
    torch.manual_seed(0)
    gpt = model.build_model("gpt-tiny").eval()
    x = torch.randint(0, 256, (2, 64))
    with torch.no_grad():
        logits = gpt(x)
        changed = x.clone()
        changed[:, 40] = (changed[:, 40] + 1) % 256
        later = gpt(changed)
    assert logits.shape == (2, 64, 256)
    assert torch.allclose(logits[:, :40], later[:, :40], atol=1e-5)  # no position sees a later byte
    assert not torch.allclose(logits[:, 40:], later[:, 40:])
    assert [n for n, _ in gpt.named_children()] == ["block0", "block1", "block2", "block3", "ln_f"]
    with pytest.raises(ValueError, match="^65 tokens exceed the model's context of 64$"):
        gpt(torch.zeros(1, 65, dtype=torch.long))


def test_pipeline_stages_are_cut_between_blocks_and_tie_the_head():
    from hpc_dl.jobs.pipeline import split, tied

    torch.manual_seed(0)
    gpt = model.build_model("gpt-tiny").eval()
    layers = tasks.get("language").stages(None, gpt)
    x = torch.randint(0, 256, (2, 64))
    with torch.no_grad():
        assert torch.equal(torch.nn.Sequential(*layers)(x), gpt(x))  # the layers in order are the model
    parts = split(layers, 2)
    assert [[type(m).__name__ for m in part] for part in parts] == [
        ["Embed", "Block", "Block"],
        ["Block", "Block", "Head"],
    ]
    ((weight, stages),) = tied(parts)
    assert weight is gpt.wte and stages == (0, 1)  # the head is the token embedding, on the first and last stage
    assert tied(split(layers, 1)) == []


def test_activation_checkpointing_recomputes_each_block_for_the_same_gradients():
    torch.manual_seed(0)
    plain = model.build_model("gpt-tiny")
    saving = model.build_model("gpt-tiny", checkpointing=True)
    saving.load_state_dict(plain.state_dict())
    calls = []
    for block in saving.blocks():
        block.register_forward_pre_hook(lambda module, args: calls.append(module))
    x, y = torch.randint(0, 256, (2, 64)), torch.randint(0, 256, (2, 64))
    for gpt in (plain, saving):
        torch.nn.functional.cross_entropy(gpt(x).flatten(0, 1), y.flatten()).backward()
    # each block's forward, then its recomputation as the backward pass reaches it
    assert calls == saving.blocks() + saving.blocks()[::-1]
    for (name, a), b in zip(plain.named_parameters(), saving.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name
    with torch.no_grad():
        saving(x)  # no backward to come: nothing is recomputed
    assert len(calls) == 3 * saving.layers


def test_activation_checkpointing_is_a_switch_for_ddp_and_fsdp():
    from hpc_dl import render
    from hpc_dl.train.entry import job_config

    on = JobSpec(strategy="fsdp", gpus=2, model="gpt-tiny", dataset="synthetic-text", activation_checkpointing=True)
    args = render.entry_args(on, tmp := "/tmp/run")
    assert args[args.index("--precision") + 2 :] == ["--activation-checkpointing"]
    assert job_config("fsdp", args).activation_checkpointing is True
    off = render.entry_args(on.replace(activation_checkpointing=False), tmp)
    assert "--activation-checkpointing" not in off and job_config("fsdp", off).activation_checkpointing is False
    refused = {
        "pipeline": "--activation-checkpointing applies to strategy 'ddp' or 'fsdp' only, not 'pipeline'",
        "resnet18": "--activation-checkpointing does not apply to classification model 'resnet18' "
        "(it recomputes transformer blocks: the language models have them)",
        "mypkg.models:net": "--activation-checkpointing does not apply to classification model 'mypkg.models:net' "
        "(it recomputes transformer blocks: the language models have them)",
    }
    for what, message in refused.items():
        spec = {"strategy": what, "gpus": 2} if what == "pipeline" else {"model": what, "dataset": "digits"}
        with pytest.raises(SpecError) as err:
            JobSpec(**{"model": "gpt-tiny", "dataset": "synthetic-text", **spec, "activation_checkpointing": True})
        assert str(err.value) == message


def test_blocks_shift_by_one():
    blocks = data.Blocks(torch.arange(22, dtype=torch.uint8), context=4)
    assert len(blocks) == 4  # 22 bytes: four blocks of 5, two left over
    x, y = blocks[1]
    assert (x.tolist(), y.tolist(), x.dtype) == ([5, 6, 7, 8], [6, 7, 8, 9], torch.int64)
    with pytest.raises(IndexError):
        blocks[4]


def test_synthetic_text_is_seeded_letters():
    train, test = data.synthetic(8, 5, 3)
    assert (len(train), len(test)) == (5, 3)
    stream = bytes(train.tokens.tolist() + test.tokens.tolist())
    assert len(stream) == 8 * 9 and set(stream) <= set(data.ALPHABET)
    assert data.markov_bytes(500).tolist() == data.markov_bytes(500).tolist()
    defaults = data.synthetic(4, None, None)
    assert (len(defaults[0]), len(defaults[1])) == (2048, 256)


def test_text_reads_a_folder_of_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_bytes(b"B" * 30)
    (tmp_path / "a.txt").write_text("ä" * 15, encoding="utf-8")  # 30 bytes of UTF-8
    (tmp_path / "sub" / "c.txt").write_bytes(b"C" * 40)
    (tmp_path / ".hidden").write_bytes(b"H" * 1000)
    assert data.read_bytes(tmp_path) == "ä".encode() * 15 + b"B" * 30 + b"C" * 40
    d = data.load("text", str(tmp_path), 4, None, None)  # 100 bytes: 20 blocks of 5, the last 2 to test
    assert (len(d.train), len(d.test), d.num_classes, d.channels) == (18, 2, 256, None)
    assert bytes(d.test[1][1].tolist()) == b"CCCC"
    cut = data.load("text", str(tmp_path), 4, 3, 1)
    assert (len(cut.train), len(cut.test)) == (3, 1)
    single = data.load("text", str(tmp_path / "sub" / "c.txt"), 4, None, None)
    assert (len(single.train), len(single.test)) == (7, 1)


def test_text_too_short_is_one_line(tmp_path):
    (tmp_path / "t.txt").write_bytes(b"x" * 9)
    with pytest.raises(DataError) as err:
        data.load("text", str(tmp_path), 4, None, None)
    assert str(err.value) == f"text: {tmp_path} holds 9 bytes, fewer than 2 blocks of 5 (one to train, one to test)"


def test_perplexity():
    assert perplexity(math.log(7.5)) == pytest.approx(7.5)
    assert (perplexity(None), perplexity(1e6)) == (None, math.inf)


@pytest.mark.parametrize("strategy", ["hogwild", "kfold"])
def test_strategies_that_cannot_train_a_language_model(strategy):
    extra = {"folds": 2, "fold": 0} if strategy == "kfold" else {"gpus": 2}
    with pytest.raises(SpecError) as err:
        JobSpec(strategy=strategy, model="gpt-tiny", dataset="synthetic-text", **extra)
    assert str(err.value) == (
        f"strategy '{strategy}' cannot train language model 'gpt-tiny' (use ddp, dp, fsdp, pipeline, horovod or psgd)"
    )


def test_language_spec_checks(hpcdl, tmp_path):
    for strategy in ("ddp", "dp", "fsdp", "pipeline", "horovod", "psgd"):
        JobSpec(strategy=strategy, model="gpt-small", dataset="synthetic-text", gpus=2)
    result = hpcdl("submit", "--profile", "local", "--strategy", "hogwild", "--gpus", "2", "--model", "gpt-tiny",
                   "--dataset", "synthetic-text", "--dry-run")  # fmt: skip
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: strategy 'hogwild' cannot train language model 'gpt-tiny' "
        "(use ddp, dp, fsdp, pipeline, horovod or psgd)\n",
    )
    for size in (64, 100_000):
        with pytest.raises(SpecError) as err:
            JobSpec(model="gpt-tiny", dataset="synthetic-text", image_size=size)
        assert str(err.value) == (
            "--image-size does not apply to language model 'gpt-tiny' "
            "(a language model reads byte tokens; its model sets the context)"
        )
    with pytest.raises(SpecError, match="^model 'gpt-tiny' is a language model: choose a language dataset "):
        JobSpec(model="gpt-tiny")
    with pytest.raises(SpecError) as err:
        JobSpec(model="mypkg.models:net", dataset="synthetic-text")
    assert str(err.value) == (
        "dataset 'synthetic-text' is for language: choose a language model (gpt-tiny, gpt-small, gpt-medium); "
        "your own model trains classification data sets"
    )
    with pytest.raises(SpecError) as err:
        JobSpec(model="gpt-tiny", dataset="mypkg.data:corpus")
    assert str(err.value) == (
        "model 'gpt-tiny' is a language model: choose a language dataset (synthetic-text, text); "
        "your own data set is for classification models"
    )
    with pytest.raises(SpecError, match=r"^dataset 'text' needs --data-root \(a folder that already holds it\)$"):
        JobSpec(model="gpt-tiny", dataset="text")
    (tmp_path / "corpus.txt").write_text("hello " * 100)
    local = profiles.load("local")
    assert preflight.check_data_root(JobSpec(model="gpt-tiny", dataset="text", data_root=str(tmp_path)), local) == []
    one = JobSpec(model="gpt-tiny", dataset="text", data_root=str(tmp_path / "corpus.txt"))
    assert preflight.check_data_root(one, local) == []  # a file will do for text
    with pytest.raises(SpecError, match="is not a folder$"):
        preflight.check_data_root(JobSpec(data_root=str(tmp_path / "corpus.txt")), local)


# each strategy's own options where it has some: ddp and fsdp recomputing activations, pipeline and fsdp in
# bf16, horovod accumulating 2 batches per allreduce, psgd averaging every 4 steps
LEARNS = {  # strategy: (its flags, collect's variant column)
    "ddp": (["--activation-checkpointing"], "activation_checkpointing=True"),
    "fsdp": (["--precision", "bf16", "--activation-checkpointing"], "activation_checkpointing=True"),
    "dp": ([], "-"),
    "pipeline": (["--precision", "bf16", "--microbatches", "2"], "microbatches=2"),
    "horovod": (["--backward-passes", "2"], "backward_passes=2"),
    "psgd": (["--average", "every:4"], "average=every:4"),
}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(LEARNS))
def test_gpt_tiny_learns_synthetic_text_then_collect(hpcdl, runs_root, tmp_path, strategy):
    """2 workers (dp: one CPU device), 3 short epochs, every strategy that trains a language model: ddp and
    fsdp recomputing each block's activations, fsdp in bf16 (its mixed-precision policy, with the final
    LayerNorm's fp32 output into the tied head), pipeline in bf16 (2 stages cut between blocks, the head
    tied across them), horovod's gradient accumulation, psgd's local SGD. The test loss falls every epoch,
    perplexity is exp of it, and collect's table shows tokens/s after time/epoch and perplexity, not
    accuracy."""
    if strategy == "horovod" and not HOROVOD:
        if os.environ.get("CI"):
            pytest.fail("horovod is not built (make test builds it)")
        pytest.skip("horovod is not built: make horovod")
    from hpc_dl.analysis import collect as col

    from hpc_dl.events import read_rank
    from hpc_dl.runs import RunDir, read_json

    flags = ["--model", "gpt-tiny", "--dataset", "synthetic-text", "--train-samples", "128", "--test-samples", "32",
             "--epochs", "3", "--batch-size", "8", "--lr", "0.05", *LEARNS[strategy][0]]  # fmt: skip
    result = hpcdl("submit", "--profile", "local", "--strategy", strategy, "--gpus", "2", *flags, "--wait")
    assert result.exit_code == 0, result.output
    (run,) = [RunDir(p) for p in runs_root.glob(f"default/*-{strategy}-*")]
    evals = [e for e in read_rank(run.rank_events(0))[0] if e["event"] == "eval"]
    losses = [e["test_loss"] for e in evals]
    assert [e["epoch"] for e in evals] == [1, 2, 3] and losses[0] > losses[1] > losses[2], evals
    assert all(
        e["test_accuracy"] is None and e["test_perplexity"] == pytest.approx(math.exp(e["test_loss"])) for e in evals
    )
    assert read_json(run.result)["test_perplexity"] == pytest.approx(evals[-1]["test_perplexity"])
    report = col.collect([runs_root])
    row = report.scaling.iloc[0]
    assert row["variant"] == LEARNS[strategy][1]
    assert row["throughput_tokens_per_s"] == pytest.approx(row["throughput"] * 64)
    assert row["test_perplexity"] == pytest.approx(evals[-1]["test_perplexity"])
    header = next(line for line in report.markdown.splitlines() if line.startswith("| strategy"))
    shown = [h.strip() for h in header.strip("|").split("|")]
    assert shown[shown.index("time/epoch (s)") + 1] == "tokens/s"
    assert shown[-4:] == ["perplexity", "peak memory (MiB)", "resource", "resource-h"]  # then what it held
    assert "test acc" not in shown and "time/iter (s)" not in shown
    if strategy == "ddp":  # beside an image run: one table, each row in its own task's units
        from tests.test_collect import make_run

        make_run(runs_root, "img", 2, [1000.0, 1000.0], accuracy=0.75)
        both = col.collect([runs_root])
        lines = both.markdown.splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("| strategy"))
        shown = [h.strip() for h in lines[header].strip("|").split("|")]
        rows = {
            r[shown.index("model")]: r
            for r in ([c.strip() for c in line.strip("|").split("|")] for line in lines[header + 2 : header + 4])
        }
        image, text = rows["mnist-cnn"], rows["gpt-tiny"]
        columns = [shown.index(c) for c in ("samples/s", "tokens/s", "test acc", "perplexity")]
        assert [image[i] for i in columns] == ["1000.0", "-", "0.750", "-"], image
        lm = both.scaling.set_index("model").loc["gpt-tiny"]
        assert [text[i] for i in columns] == [
            f"{lm['throughput']:.1f}",
            f"{lm['throughput_tokens_per_s']:.1f}",
            "-",
            f"{lm['test_perplexity']:.3f}",
        ], text


@pytest.mark.slow
@pytest.mark.slurm
def test_ddp_and_a_requeued_pipeline_across_two_nodes_on_slurm(on_cluster, hpcdl, runs_root, monkeypatch):
    """gpt-tiny by ddp and by a 2-stage pipeline, one rank on each of n1 and n2. The pipeline is requeued
    (scontrol requeue) while its ranks wait at step 10 of epoch 2: they checkpoint their stages at that step,
    and the next attempt resumes there and finishes; both runs' test loss falls every epoch."""
    from hpc_dl import control
    from hpc_dl.events import read_rank
    from tests.test_real_runs import submitted_run, wait_for

    flags = ["--profile", "testcluster", "--nodes", "2", "--gpus", "1", "--model", "gpt-tiny", "--dataset",
             "synthetic-text", "--train-samples", "256", "--test-samples", "64", "--epochs", "3", "--batch-size",
             "8", "--lr", "0.1", "--time", "10"]  # fmt: skip
    ddp = submitted_run(hpcdl("submit", *flags, "--strategy", "ddp"), runs_root)
    monkeypatch.setenv("HPCDL_TEST_HOLD_AT_STEP", "2:10")  # the pipeline's ranks wait there for the requeue
    pipeline = submitted_run(hpcdl("submit", *flags, "--strategy", "pipeline", "--microbatches", "2"), runs_root)

    def events(run, rank=0):
        return read_rank(run.rank_events(rank))[0] if run.rank_events(rank).exists() else []

    def epochs(run, rank=0):
        return [e["epoch"] for e in events(run, rank) if e["event"] == "epoch_stop"]

    wait_for(lambda: epochs(pipeline) == [1], 600, "the pipeline's epoch 1")
    subprocess.run(["scontrol", "requeue", json.loads(pipeline.submission.read_text())["job_id"]], check=True)
    assert [control.wait(r, timeout_s=600) for r in (ddp, pipeline)] == ["COMPLETED", "COMPLETED"]
    for run in (ddp, pipeline):
        starts = [e for rank in (0, 1) for e in events(run, rank) if e["event"] == "run_start"]
        assert {s["hostname"] for s in starts} == {"n1", "n2"}  # one rank on each node
        assert epochs(run, 0) == epochs(run, 1) == [1, 2, 3]
        losses = [e["test_loss"] for e in events(run) if e["event"] == "eval"]
        assert losses[0] > losses[1] > losses[2], losses
    resumed = [
        (s.get("resumed_from_epoch"), s.get("resumed_at_step")) for s in events(pipeline) if s["event"] == "run_start"
    ]
    assert resumed == [(None, None), (1, 10)]
    assert "stop requested (SIGTERM (preempted)): checkpointed and stopped at step 10 of epoch 2" in (
        pipeline.rank_log(0).read_text()
    )
