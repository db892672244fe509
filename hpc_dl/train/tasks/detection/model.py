"""Detection's model: torchvision's Faster R-CNN, untrained, sized for small images.

Nothing is downloaded; $HPCDL_DETECTION_WEIGHTS may name a state_dict to start from.
"""

from __future__ import annotations

import os

import torch
from torch import nn

# Below SMALL px (a few objects an image): fewer proposals and sampled boxes than COCO's defaults, which are
# sized for 800 px images with many objects. The box head's two 1024-wide layers over each sampled box are
# most of a CPU step: 64 boxes an image took 0.67 s a step (batch 4, 128 px, 1 thread), 16 take 0.24 s.
# The anchors shrink with the image (ANCHOR_SIDE: COCO's 32-512 px anchors at 512 px), so at 128 px they
# are 8-128 px, the size of the objects; that doubled the shapes set's mAP after 300 steps.
SMALL = 512
ANCHOR_SIDE = 512
SMALL_IMAGES = {
    "rpn_pre_nms_top_n_train": 300,
    "rpn_post_nms_top_n_train": 100,
    "rpn_pre_nms_top_n_test": 300,
    "rpn_post_nms_top_n_test": 100,
    "rpn_batch_size_per_image": 64,
    "box_batch_size_per_image": 16,
}
WEIGHTS_ENV = "HPCDL_DETECTION_WEIGHTS"  # a state_dict file to start from (nothing is downloaded)


def build_model(name: str, num_classes: int, image_size: int) -> nn.Module:
    """torchvision's Faster R-CNN, untrained (weights=None, weights_backbone=None), resizing images to
    `image_size` on their short side (below SMALL px: SMALL_IMAGES and scaled anchors);
    $HPCDL_DETECTION_WEIGHTS names a state_dict to start from (tensors whose shape differs, such as another
    class count's heads, are left as built)."""
    from torchvision.models import detection as tvd

    max_size = max(image_size, round(image_size * 1333 / 800))
    small = SMALL_IMAGES if image_size < SMALL else {}
    model = getattr(tvd, name)(
        weights=None, weights_backbone=None, num_classes=num_classes, min_size=image_size, max_size=max_size, **small
    )
    if small:
        model.rpn.anchor_generator = scaled_anchors(model.rpn.anchor_generator, image_size / ANCHOR_SIDE)
    path = os.environ.get(WEIGHTS_ENV)
    if path:
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)
    return model


def scaled_anchors(anchors, factor: float):
    """The same anchors (count per location and aspect ratios, so the RPN head still fits) times `factor`."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    sizes = tuple(tuple(max(1, round(side * factor)) for side in level) for level in anchors.sizes)
    return AnchorGenerator(sizes, anchors.aspect_ratios)
