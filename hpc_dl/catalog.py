"""What can be trained, as plain data: the tasks, and model and dataset names with the facts the spec checks.

TASKS is the registry of tasks: one TaskInfo each, with what the login node needs to know (the
strategies that can train it, the metrics it reports, what its throughput counts) and the name of its
Task class, which the compute node loads (hpc_dl.train.tasks.get). Each model and data set says which
task it belongs to. Importing this module is cheap (no torch); hpc_dl.train builds the real objects from
these entries.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_SIZE_TOLERANCE = 8  # x a model's native side (64x its pixels): beyond any real use of these models

DEFAULT_TASK = "classification"  # the task of a model or data set that names none (and of your own)


@dataclass(frozen=True)
class Metric:
    """A number a task reports, under one name wherever it appears."""

    key: str  # its key in the events (eval records; epoch_stop for per-epoch stats) and result.json
    header: str  # its column header in collect's Markdown tables
    tag: str  # its TensorBoard tag
    column: str = ""  # its column in collect's tables (default: the key)
    unit: str = ""  # what it is measured in: "" for a fraction (accuracy, mAP), "s", ...
    higher_is_better: bool = True  # its direction: the report's cost of a strategy against its baseline

    @property
    def name(self) -> str:
        return self.column or self.key


@dataclass(frozen=True)
class Refusal:
    """A spec option a task cannot train with: any value but `neutral` is refused, saying `why`."""

    field: str
    neutral: tuple
    why: str


@dataclass(frozen=True)
class TaskInfo:
    """A task as the login node sees it (no torch): the facts that spec, collect and serve derive from."""

    name: str
    task: str  # "module:Class" of its hpc_dl.train.tasks.base.Task, imported on the compute node only
    description: str
    metrics: tuple[Metric, ...]  # what each evaluation reports: the eval record's, result.json's quality
    epoch_metrics: tuple[Metric, ...] = ()  # its own per-epoch stats, beside the loop's (time, loss, samples/s)
    throughput: str = "samples"  # what its throughput counts per second (samples, images, tokens)
    strategies: tuple[str, ...] | None = None  # the strategies that can train it (None: every one)
    refuses: tuple[Refusal, ...] = ()  # strategy options it cannot train with


@dataclass(frozen=True)
class ModelInfo:
    name: str
    channels: int = 3  # input channels the model expects (an image model's)
    min_size: int = 32  # smallest input side it accepts; smaller images are resized up
    description: str = ""
    splittable: bool = True  # can run as pipeline stages (a plain sequence of layers)
    task: str = DEFAULT_TASK  # a key of TASKS
    native_size: int = 224  # the input side it was designed for (ImageNet's 224; a detector's short side)
    context: int | None = None  # the tokens a sequence model reads at once (None: it reads images)

    @property
    def max_size(self) -> int:
        """The largest --image-size accepted: tolerant (IMAGE_SIZE_TOLERANCE x its native side), yet no
        typo allocates gigapixel tensors."""
        return IMAGE_SIZE_TOLERANCE * self.native_size


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int = 0  # an image set's channels (0: not images)
    size: int = 0  # native image side (0: not images)
    classes: int | None = None  # None: read from the data (imagefolder); a text set's: its vocabulary
    needs_data_root: bool = False
    description: str = ""
    task: str = DEFAULT_TASK  # a key of TASKS
    generated: str = ""  # the module that makes it (python -m MODULE --out DIR); without --data-root the job
    # runs it into the data cache on the node
    root_file: bool = False  # --data-root may be one file as well as a folder


MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        ModelInfo("mnist-cnn", 1, 28, "the 2-conv MNIST CNN of the PSGD study (seed 002)", native_size=28),
        ModelInfo("resnet18", 3, 32, "torchvision ResNet-18"),
        ModelInfo("resnet50", 3, 32, "torchvision ResNet-50"),
        ModelInfo("alexnet", 3, 64, "torchvision AlexNet"),
        ModelInfo("vgg11", 3, 32, "torchvision VGG-11 (batch norm)"),
        ModelInfo("vgg16", 3, 32, "torchvision VGG-16 (batch norm)"),
        ModelInfo("vgg19", 3, 32, "torchvision VGG-19 (batch norm)"),
        ModelInfo("googlenet", 3, 32, "torchvision GoogLeNet, no auxiliary heads", splittable=False),
        ModelInfo("mobilenet_v2", 3, 32, "torchvision MobileNetV2"),
        ModelInfo(
            "inception_v3", 3, 75, "torchvision Inception-v3, no auxiliary head", splittable=False, native_size=299
        ),
        ModelInfo(
            "fasterrcnn_mobilenet_v3_large_fpn",
            3,
            32,
            "torchvision Faster R-CNN, MobileNetV3-Large FPN backbone (detection; seed 003)",
            splittable=False,
            task="detection",
            native_size=800,  # COCO's usual short side
        ),
        ModelInfo(
            "fasterrcnn_resnet50_fpn",
            3,
            32,
            "torchvision Faster R-CNN, ResNet-50 FPN backbone (detection; seed 003)",
            splittable=False,
            task="detection",
            native_size=800,  # COCO's usual short side
        ),
        *(
            ModelInfo(
                name,
                description=f"decoder-only byte-level transformer LM, {what}",
                task="language",
                context=context,
            )
            for name, what, context in (
                ("gpt-tiny", "~0.8 M parameters (4 layers, width 128, 64 tokens)", 64),
                ("gpt-small", "~25 M parameters (8 layers, width 512, 256 tokens)", 256),
                ("gpt-medium", "~114 M parameters (16 layers, width 768, 512 tokens)", 512),
            )
        ),
    ]
}

DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo(
            "fashion-mnist",
            1,
            28,
            10,
            False,
            "Fashion-MNIST from the Debian package dataset-fashion-mnist (or --data-root)",
        ),
        DatasetInfo("digits", 1, 8, 10, False, "scikit-learn's 1,797 8x8 handwritten digits"),
        DatasetInfo("synthetic", 3, 32, 10, False, "random images (torchvision FakeData), for throughput"),
        DatasetInfo("imagefolder", 3, 64, None, True, "a class-per-folder image tree under --data-root (ASL-style)"),
        DatasetInfo("mnist", 1, 28, 10, True, "torchvision MNIST already under --data-root (never downloaded)"),
        DatasetInfo("cifar10", 3, 32, 10, True, "torchvision CIFAR-10 already under --data-root (never downloaded)"),
        DatasetInfo(
            "coco",
            3,
            128,
            None,
            False,
            "COCO-format detection folder under --data-root (instances_{train,val}2017.json); without it, "
            "generated coloured shapes (hpc_dl.train.tasks.detection.shapes)",
            task="detection",
            generated="hpc_dl.train.tasks.detection.shapes",
        ),
        DatasetInfo(
            "synthetic-text",
            classes=256,
            description="bytes of a seeded order-2 Markov source over 16 letters, made in memory (learnable)",
            task="language",
        ),
        DatasetInfo(
            "text",
            classes=256,
            needs_data_root=True,
            description="any UTF-8 file, or folder of files, under --data-root, read as bytes",
            task="language",
            root_file=True,
        ),
    ]
}

# the image tasks' models have no transformer blocks for --activation-checkpointing to recompute
NO_BLOCKS = Refusal(
    "activation_checkpointing", (None, False), "it recomputes transformer blocks: the language models have them"
)
_MAP = (
    Metric("test_map", "mAP", "test/mAP"),  # COCO box AP@[.5:.95]
    Metric("test_map50", "AP50", "test/AP50"),
    Metric("test_map75", "AP75", "test/AP75"),
)
TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in [
        TaskInfo(
            "classification",
            "hpc_dl.train.tasks.classification:ClassificationTask",
            "images -> one of N classes (cross-entropy; top-1 accuracy)",
            metrics=(Metric("test_accuracy", "test acc", "test/accuracy"),),
            refuses=(NO_BLOCKS,),
        ),
        # a step over lists of images and target dicts: the other strategies split models into stages,
        # average plain parameters or read classification batches
        TaskInfo(
            "detection",
            "hpc_dl.train.tasks.detection:DetectionTask",
            "images -> labelled boxes (Faster R-CNN; COCO box mAP)",
            metrics=_MAP,
            epoch_metrics=(
                Metric("time_per_iteration(s)", "time/iter (s)", "time/iteration(s)", "time_per_iteration_s", "s"),
            ),
            throughput="images",
            strategies=("ddp", "dp", "fsdp", "horovod"),
            refuses=(
                Refusal(
                    "backward_passes",
                    (None, 1),
                    "horovod accumulates over the shared step, not a detector's own; raise --batch-size instead",
                ),
                NO_BLOCKS,
            ),
        ),
        # a step over token blocks (cross-entropy over every token), the shared loop's with the task's loss;
        # not for kfold (its report is held-out accuracy) nor hogwild (lock-free updates of one shared model)
        TaskInfo(
            "language",
            "hpc_dl.train.tasks.language:LanguageTask",
            "bytes -> the next byte (decoder-only transformer; cross-entropy per token, perplexity)",
            metrics=(Metric("test_perplexity", "perplexity", "test/perplexity", higher_is_better=False),),
            epoch_metrics=(
                Metric(
                    "throughput(tokens/s)", "tokens/s", "throughput/tokens_per_s", "throughput_tokens_per_s", "tokens/s"
                ),
            ),
            throughput="tokens",
            strategies=("ddp", "dp", "fsdp", "pipeline", "horovod", "psgd"),
            refuses=(Refusal("image_size", (None,), "a language model reads byte tokens; its model sets the context"),),
        ),
    ]
}
PRECISIONS = ("fp32", "bf16", "fp16")
COMPRESSIONS = ("none", "fp16")  # horovod allreduce compression
SCHEDULERS = ("none", "cosine", "step")  # learning-rate schedules (kfold compares them)


def task_of(model: str | None, dataset: str | None = None) -> TaskInfo:
    """The task of a run: its catalog model's, else its catalog data set's, else DEFAULT_TASK (your own code)."""
    info = MODELS.get(model) or DATASETS.get(dataset)
    return TASKS[info.task if info is not None else DEFAULT_TASK]


def models_of(task: str) -> list[str]:
    return [n for n, m in MODELS.items() if m.task == task]


def datasets_of(task: str) -> list[str]:
    return [n for n, d in DATASETS.items() if d.task == task]


def metrics() -> tuple[Metric, ...]:
    """Every task's evaluation metrics, in registry order (collect's quality columns)."""
    return tuple(m for t in TASKS.values() for m in t.metrics)


def epoch_metrics() -> tuple[Metric, ...]:
    """Every task's own per-epoch stats, in registry order."""
    return tuple(m for t in TASKS.values() for m in t.epoch_metrics)
