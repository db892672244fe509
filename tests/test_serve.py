"""hpcdl serve / tensorboard without a browser: predictions from a checkpoint, preprocessing identical to the
training pipeline's, one-line errors, the printed commands, and the TensorBoard tracker across a requeue."""

import json
import zipfile
from pathlib import Path

import pytest
import torch

from hpc_dl.cli import cmd_serve
from hpc_dl.runs import RunDir
from hpc_dl.serve import launch, predict
from hpc_dl.spec import JobSpec
from hpc_dl.train import models
from hpc_dl.train.tasks.classification import data
from hpc_dl.train.tasks.classification import serve as classify
from hpc_dl.train.tracking import Tracker


def make_run(root: Path, run_id: str, strategy: str = "ddp", model: str = "mnist-cnn", state: str = "model") -> RunDir:
    """A run folder with a checkpoint shaped as Trainer.save_checkpoint writes it (untrained weights)."""
    run = RunDir.create(root, "study", run_id)
    gpus = 2 if strategy == "pipeline" else 1
    run.spec.write_text(json.dumps(JobSpec(strategy=strategy, model=model, epochs=3, gpus=gpus).to_dict()))
    torch.manual_seed(0)
    weights = models.build(model, 10).state_dict()
    states = {
        "model": {"model": weights, "optimizer": {}},
        "stages": {"stages": [{"model": weights, "optimizer": {}}]},
    }
    torch.save(
        {"format": 1, "epoch": 2, "state": states[state], "history": [], "evals": []}, run.checkpoints / "last.pt"
    )
    return run


def fashion_image(index: int = 0):
    from torchvision.datasets import FashionMNIST

    return FashionMNIST(data.prepare_fashion_mnist(), train=False)[index]


@pytest.mark.parametrize("model", ["mnist-cnn", "resnet18"])
def test_preprocessing_is_the_training_pipelines_bit_for_bit(model):
    image, label = fashion_image(3)
    ds = data.load(model, "fashion-mnist", None, None, None, 8, 0)
    x, y = ds.collate([ds.test[3]])  # the training loader's collate, on a batch of one
    trained = x[0], int(y[0])
    size = data.image_size_for(model, "fashion-mnist", None)
    mine = classify.preprocess("fashion-mnist", size, 3 if model == "resnet18" else 1)(image)
    assert trained[1] == label
    assert mine.shape == trained[0].shape
    assert torch.equal(mine, trained[0])


def test_top5_matches_the_model_and_names_the_classes(tmp_path):
    run = make_run(tmp_path / "runs", "r-1")
    p = predict.load(run, device="cpu")
    image, _ = fashion_image(0)
    (top,) = p.top5([image])
    logits = p.model(p.preprocess(image).unsqueeze(0))
    probs = torch.softmax(logits, 1)[0]
    assert [name for name, _ in top] == [p.classes[i] for i in probs.topk(5).indices.tolist()]
    assert [q for _, q in top] == pytest.approx(probs.topk(5).values.tolist())
    assert p.classes == list(classify.CLASS_NAMES["fashion-mnist"])
    assert (p.epoch, p.image_size, str(p.device)) == (2, 28, "cpu")


def test_top5_takes_bytes_paths_and_several_images(tmp_path):
    run = make_run(tmp_path / "runs", "r-1")
    p = predict.load(str(run.path), device="cpu")
    image, _ = fashion_image(0)
    path = tmp_path / "a.png"
    image.save(path)
    answers = p.top5([path, path.read_bytes(), image.convert("RGB").resize((64, 64))])
    assert len(answers) == 3 and all(len(a) == 5 for a in answers)
    assert answers[0] == answers[1]


def test_not_an_image_is_one_line(tmp_path):
    p = predict.load(make_run(tmp_path / "runs", "r-1"), device="cpu")
    with pytest.raises(predict.UsageError) as err:
        p.top5([b"hello"])
    assert str(err.value).startswith("image 1 is not an image this page can read: ")


def test_imagefolder_class_names_are_its_sorted_folders(tmp_path):
    for name in ("b", "a", "C"):
        (tmp_path / "asl" / "train" / name).mkdir(parents=True)
    spec = {"dataset": "imagefolder", "data_root": str(tmp_path / "asl")}
    assert classify.class_names(spec, 3) == ["C", "a", "b"]
    assert classify.class_names(spec, 4) == ["class 0", "class 1", "class 2", "class 3"]
    assert classify.class_names({"dataset": "digits"}, 10) == list("0123456789")


@pytest.mark.parametrize(
    ("strategy", "state", "message"),
    [
        (
            "pipeline",
            "stages",
            "run r-1 cannot be served: pipeline: its checkpoint holds one pipeline stage per rank, not a whole model",
        ),
        (
            "psgd",
            "model",
            "run r-1 cannot be served: psgd: its checkpoint holds every rank's own model, not one averaged model",
        ),
    ],
)
def test_unservable_strategies_are_one_line(hpcdl, runs_root, strategy, state, message):
    make_run(runs_root, "r-1", strategy=strategy, state=state)
    result = hpcdl("serve", "r-1")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {message}\n")


def test_no_checkpoint_and_a_truncated_one(hpcdl, runs_root):
    run = make_run(runs_root, "r-1")
    ckpt = run.checkpoints / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    result = hpcdl("serve", "r-1")
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: cannot read checkpoint {ckpt}: not a complete torch.save file\n",
    )
    ckpt.unlink()
    result = hpcdl("serve", "r-1")
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: run r-1 has no checkpoint ({ckpt}): serve needs a run that finished an epoch\n",
    )
    assert hpcdl("serve", "nope").stderr == f"Error: no run 'nope' (give a run folder, or a run id under {runs_root})\n"


def test_a_checkpoint_without_a_whole_model_is_refused_on_load(tmp_path):
    run = make_run(tmp_path / "runs", "r-1", state="stages")
    with pytest.raises(predict.NotServable) as err:
        predict.load(run, device="cpu")
    assert str(err.value) == f"run r-1 cannot be served: checkpoint {run.checkpoints / 'last.pt'} holds no whole model"
    assert zipfile.is_zipfile(run.checkpoints / "last.pt")


def test_serve_prints_the_url_and_the_port_forward(hpcdl, runs_root, monkeypatch):
    run = make_run(runs_root, "r-1")
    started = []
    monkeypatch.setattr(cmd_serve.os, "execvp", lambda program, argv: started.append(argv))
    monkeypatch.setenv("HPCDL_LOGIN_HOST", "login.example.edu")
    monkeypatch.setenv("USER", "me")
    monkeypatch.setattr(launch, "check_port", lambda host, port: port)
    result = hpcdl("serve", "r-1", "--port", "8600", "--no-browser")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "serving run r-1 (mnist-cnn on fashion-mnist, ddp)\n"
        f"  checkpoint  {run.checkpoints / 'last.pt'}\n"
        "  url         http://localhost:8600\n"
        "  from your computer: ssh -N -L 8600:localhost:8600 me@login.example.edu   then open http://localhost:8600\n"
        "  stop with Ctrl-C\n"
    )
    (argv,) = started
    assert argv[1:5] == ["-m", "streamlit", "run", str(launch.PAGE)]
    assert argv[5:] == [
        "--server.address", "localhost", "--server.port", "8600", "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
        "--", str(run.path),
        "--device", "auto",
    ]  # fmt: skip


def test_a_taken_port_is_one_line(hpcdl, runs_root):
    import socket

    make_run(runs_root, "r-1")
    with socket.socket() as s:
        s.bind(("localhost", 0))
        s.listen()
        port = s.getsockname()[1]
        result = hpcdl("serve", "r-1", "--port", str(port))
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: invalid port: {port} (in use on localhost; pick another with --port, or --port 0)\n",
    )


def test_tensorboard_prints_the_command_for_a_study(hpcdl, runs_root):
    a, b = make_run(runs_root, "r-1"), make_run(runs_root, "r-2")
    make_run(runs_root, "r-3")  # no logs: left out
    for run in (a, b):
        (run.path / "tensorboard").mkdir()
    result = hpcdl("tensorboard", str(runs_root / "study"), "--port", "6007")
    assert (result.exit_code, result.stderr) == (0, "")
    program = launch.tensorboard_program()
    assert result.stdout == (
        f"{program} --logdir_spec r-1:{a.path}/tensorboard,r-2:{b.path}/tensorboard --host localhost --port 6007\n"
    )
    assert hpcdl("tensorboard", "r-3").stderr == (
        "Error: no TensorBoard logs in 1 run(s): a run writes them to <run>/tensorboard/ as it trains\n"
    )


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return [(s.step, round(s.value, 6)) for s in acc.Scalars(tag)]


def test_tracker_writes_each_epoch_once_across_a_requeue(tmp_path):
    stats = {"loss": 1.0, "accuracy": 0.5, "throughput(samples/s)": 100.0, "time(s)": 2.0, "rank_forward_time(s)": None}
    first = Tracker.open(tmp_path, start_epoch=0)
    for epoch in (1, 2, 3):  # epoch 3 was written, but the job was requeued before its checkpoint
        first.epoch({**stats, "epoch": epoch, "loss": float(epoch)}, {"test_accuracy": 0.1 * epoch}, lr=0.01)
    first.close()
    second = Tracker.open(tmp_path, start_epoch=2)
    for epoch in (3, 4):
        second.epoch({**stats, "epoch": epoch, "loss": 10.0 * epoch}, {"test_accuracy": 0.1 * epoch}, lr=0.001)
    second.close()
    assert scalars(tmp_path, "train/loss") == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
    assert scalars(tmp_path, "lr") == [(1, 0.01), (2, 0.01), (3, 0.001), (4, 0.001)]
    assert scalars(tmp_path, "test/accuracy") == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4)]
    assert scalars(tmp_path, "throughput(samples/s)")[0] == (1, 100.0)


def test_tracker_on_other_ranks_writes_nothing(tmp_path):
    tracker = Tracker.open(tmp_path, start_epoch=0, is_main=False)
    tracker.epoch({"epoch": 1, "loss": 1.0})
    tracker.close()
    assert not (tmp_path / "tensorboard").exists()


@pytest.mark.parametrize("command", ["serve", "tensorboard"])
def test_help_imports_no_heavy_module(command):
    import subprocess
    import sys

    code = (
        "import sys\nfrom hpc_dl.cli import cli\n"
        f"try:\n    cli.main(['{command}', '--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'streamlit', 'pandas', 'tensorboard') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"Usage: hpcdl {command} [OPTIONS]")
    assert out.splitlines()[-1] == "[]"


def test_curves_per_epoch_from_rank_0s_events(tmp_path):
    run = make_run(tmp_path / "runs", "r-1")
    lines = [
        {"event": "run_start", "time": 0, "rank": 0},
        {"event": "epoch_stop", "time": 1, "rank": 0, "epoch": 1, "loss": 2.0, "accuracy": 0.5},
        {"event": "eval", "time": 1, "rank": 0, "epoch": 1, "test_loss": 2.5, "test_accuracy": 0.4},
    ]
    run.rank_events(0).write_text("\n".join(json.dumps(x) for x in lines) + '\n{"event": "epoch_st')
    assert predict.curves(run) == [{"epoch": 1, "loss": 2.0, "accuracy": 0.5, "test_loss": 2.5, "test_accuracy": 0.4}]


def make_detection_run(root: Path, run_id: str = "det-1") -> RunDir:
    """A detection run folder with an untrained Faster R-CNN checkpoint, as Trainer.save_checkpoint writes it."""
    from hpc_dl.train.tasks.detection import model as detection

    run = RunDir.create(root, "study", run_id)
    spec = JobSpec(strategy="ddp", model="fasterrcnn_mobilenet_v3_large_fpn", dataset="coco", image_size=64)
    run.spec.write_text(json.dumps(spec.to_dict()))
    torch.manual_seed(0)
    weights = detection.build_model(spec.model, 4, 64).state_dict()
    state = {"model": weights, "optimizer": {}}
    torch.save({"format": 1, "epoch": 1, "state": state, "history": [], "evals": []}, run.checkpoints / "last.pt")
    return run


def shapes_image(tmp_path: Path) -> Path:
    from hpc_dl.train.tasks.detection import shapes

    root = tmp_path / "shapes"
    shapes.generate(root, train=1, val=1, size=64, seed=0)
    return next((root / "val2017").glob("*.jpg"))


def test_a_detection_run_is_served_as_boxes_the_model_gives(tmp_path):
    from hpc_dl.train.tasks.detection import serve as detect

    run = make_detection_run(tmp_path / "runs")
    d = predict.load(run, device="cpu")
    assert isinstance(d, detect.Detector) and d.task == "detection"
    assert d.classes == ["rectangle", "ellipse", "triangle"] and (d.epoch, d.image_size) == (1, 64)
    image = shapes_image(tmp_path)
    (found,) = d.detect([image], threshold=0.0)
    with torch.inference_mode():
        (direct,) = d.model([d.tensor(image)])
    assert [score for _, score, _ in found] == pytest.approx(direct["scores"].tolist())
    torch.testing.assert_close(torch.tensor([box for _, _, box in found]), direct["boxes"])
    names = {1: "rectangle", 2: "ellipse", 3: "triangle"}
    assert [name for name, _, _ in found] == [names[k] for k in direct["labels"].tolist()]
    assert d.detect([image], threshold=1.01) == [[]]
    drawn = d.draw(image, found[:2])
    assert drawn.size == (64, 64) and drawn.mode == "RGB"


def test_curves_of_a_detection_run_show_map(tmp_path):
    run = make_detection_run(tmp_path / "runs")
    lines = [
        {"event": "epoch_stop", "time": 1, "rank": 0, "epoch": 1, "loss": 2.0, "accuracy": None},
        {"event": "eval", "time": 1, "rank": 0, "epoch": 1, "test_loss": None, "test_map": 0.25, "test_map50": 0.5},
    ]
    run.rank_events(0).write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert predict.curves(run) == [
        {"epoch": 1, "loss": 2.0, "accuracy": None, "test_loss": None, "test_map": 0.25, "test_map50": 0.5}
    ]


def make_language_run(root: Path, run_id: str = "lm-1", steps: int = 24) -> RunDir:
    """A gpt-tiny run folder whose checkpoint learned synthetic-text for `steps` steps here (seconds on one
    thread): its next bytes are clear winners, so its greedy continuation is the same in any process."""
    from hpc_dl.train.tasks.language import data as text
    from hpc_dl.train.tasks.language import model
    from hpc_dl.train.tasks.language.train import token_loss

    run = RunDir.create(root, "study", run_id)
    run.spec.write_text(json.dumps(JobSpec(model="gpt-tiny", dataset="synthetic-text").to_dict()))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one step is 0.1 s on one thread; two threads on two shared cores are slower
    try:
        torch.manual_seed(0)
        gpt = model.build_model("gpt-tiny")
        optimizer = torch.optim.SGD(gpt.parameters(), lr=0.1, momentum=0.9)
        for x, y in torch.utils.data.DataLoader(text.synthetic(64, steps * 8, 1)[0], batch_size=8):
            optimizer.zero_grad()
            (token_loss(gpt(x), y) / y.numel()).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    state = {"model": gpt.state_dict(), "optimizer": {}}
    torch.save({"format": 1, "epoch": 1, "state": state, "history": [], "evals": []}, run.checkpoints / "last.pt")
    return run


def test_a_language_run_continues_a_prompt_as_its_model_does(language_run):
    from hpc_dl.errors import UsageError
    from hpc_dl.train.tasks.language import data as text
    from hpc_dl.train.tasks.language import serve as generate

    g = predict.load(language_run, device="cpu")
    assert isinstance(g, generate.Generator) and (g.task, g.epoch, g.context) == ("language", 1, 64)
    prompt = "abcdefghij" * 9  # 90 bytes: the model reads the last 64
    tokens = list(prompt.encode())
    with torch.no_grad():
        for _ in range(20):
            tokens.append(int(g.model(torch.tensor([tokens[-64:]]))[0, -1].argmax()))
    greedy = g.continuation(prompt, 20)
    assert greedy == bytes(tokens[90:]).decode() and set(greedy) <= set(
        text.ALPHABET.decode()
    )  # it learned the letters
    sampled = g.continuation(prompt, 12, temperature=1.0, seed=3)
    assert sampled == g.continuation(prompt, 12, temperature=1.0, seed=3) != g.continuation(prompt, 12, 1.0, seed=4)
    assert generate.sample_prompt(g.spec) == bytes(text.markov_bytes(32).tolist()).decode()
    for args, message in [
        (("",), "the prompt is empty: type a few characters for the model to continue"),
        (("ab", 0), "invalid length: 0 (the page continues a prompt by 1 to 1000 bytes)"),
    ]:
        with pytest.raises(UsageError) as err:
            g.continuation(*args)
        assert str(err.value) == message


def test_weights_that_do_not_fit_the_model_are_one_line():
    import torch

    from hpc_dl.errors import NotServable
    from hpc_dl.train.tasks.base import fitted

    model = fitted(torch.nn.Linear(2, 3), torch.nn.Linear(2, 3).state_dict(), "r1", "tiny", "cpu")
    assert not model.training
    with pytest.raises(NotServable) as caught:
        fitted(torch.nn.Linear(2, 3), torch.nn.Linear(2, 4).state_dict(), "r1", "tiny", "cpu")
    assert str(caught.value).startswith(
        "run r1: checkpoint does not fit model tiny: Error(s) in loading state_dict for Linear: size mismatch for "
        "weight: copying a param with shape torch.Size([4, 2]) from checkpoint"
    )
