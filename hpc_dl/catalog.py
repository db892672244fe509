"""What can be trained, as plain data: model and dataset names with the facts the spec checks.

Importing this module is cheap (no torch); hpc_dl.train builds the real objects from these entries.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_SIZE_TOLERANCE = 8  # x a model's native side (64x its pixels): beyond any real use of these models


@dataclass(frozen=True)
class ModelInfo:
    name: str
    channels: int  # input channels the model expects
    min_size: int  # smallest input side it accepts; smaller images are resized up
    description: str
    splittable: bool = True  # can run as pipeline stages (a plain sequence of layers)
    task: str = "classification"  # classification | detection (see TASKS)
    native_size: int = 224  # the input side it was designed for (ImageNet's 224; a detector's short side)

    @property
    def max_size(self) -> int:
        """The largest --image-size accepted: tolerant (IMAGE_SIZE_TOLERANCE x its native side), yet no
        typo allocates gigapixel tensors."""
        return IMAGE_SIZE_TOLERANCE * self.native_size


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    size: int  # native image side
    classes: int | None  # None: read from the data (imagefolder)
    needs_data_root: bool
    description: str
    task: str = "classification"
    generated: bool = False  # without --data-root, the job generates it into the data cache on the node


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
            "generated coloured shapes (hpc_dl.train.shapes)",
            task="detection",
            generated=True,
        ),
    ]
}

TASKS = ("classification", "detection")
# strategies that train a detector (a step over lists of images and target dicts; the others split
# models into stages, average plain parameters or read classification batches)
DETECTION_STRATEGIES = ("ddp", "dp", "fsdp", "horovod")
PRECISIONS = ("fp32", "bf16", "fp16")
COMPRESSIONS = ("none", "fp16")  # horovod allreduce compression
SCHEDULERS = ("none", "cosine", "step")  # learning-rate schedules (kfold compares them)
