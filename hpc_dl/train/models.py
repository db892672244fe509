"""Classification models by name (see catalog.MODELS), and each as a sequence of layers for pipeline stages.
torchvision models are built with weights=None: nothing is downloaded. Your own model is built by
tasks/classification/byo.py; other tasks build their own."""

from __future__ import annotations

import torch
from torch import nn

from .. import catalog


class MnistCNN(nn.Module):
    """The CNN of the PSGD study (seed 002): conv-pool-relu x2, dropout, pool, FC-relu, FC, output.

    pool3 is adaptive (2x2 out), so it is the seed's network at 28x28 and still works on other sizes.
    Returns logits (the seed's LogSoftmax is folded into the cross-entropy loss).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.AdaptiveMaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 2 * 2, 512),
            nn.ReLU(),
            nn.Linear(512, 256),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build(name: str, num_classes: int, channels: int | None = None, image_size: int | None = None) -> nn.Module:
    """A catalog classifier for num_classes classes (channels and image_size: what the caller has; the catalog's
    models adapt to any input size, and read the channels the data set is shaped to)."""
    if name not in catalog.MODELS:
        raise ValueError(f"unknown model {name!r}")
    if name == "mnist-cnn":
        return MnistCNN(num_classes=num_classes)
    from torchvision import models as tvm

    if name.startswith("vgg"):
        return getattr(tvm, f"{name}_bn")(weights=None, num_classes=num_classes)
    if name == "googlenet":
        return tvm.googlenet(weights=None, num_classes=num_classes, aux_logits=False, init_weights=True)
    if name == "inception_v3":
        return tvm.inception_v3(weights=None, num_classes=num_classes, aux_logits=False, init_weights=True)
    return getattr(tvm, name)(weights=None, num_classes=num_classes)


def layers(name: str, model: nn.Module) -> list[nn.Module]:
    """A catalog classifier as a plain sequence of layers (what its forward does, in order): pipeline stages."""
    if name == "mnist-cnn":
        return [*model.features, *model.classifier]
    if name.startswith("resnet"):
        return [
            model.conv1,
            model.bn1,
            model.relu,
            model.maxpool,
            model.layer1,
            model.layer2,
            model.layer3,
            model.layer4,
            model.avgpool,
            nn.Flatten(),
            model.fc,
        ]
    if name.startswith("vgg") or name == "alexnet":
        return [*model.features, model.avgpool, nn.Flatten(), *model.classifier]
    if name == "mobilenet_v2":
        return [*model.features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), *model.classifier]
    raise ValueError(f"model {name!r} cannot be split into pipeline stages")
