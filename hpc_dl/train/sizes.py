"""What a model weighs, counted once at run start for `hpcdl plan`: parameters, and the bytes a step's
gradient exchange moves (trainable parameters only, in their own dtype; a sharded parameter counts whole).
"""

from __future__ import annotations

from torch import nn


def model_bytes(model: nn.Module) -> dict:
    """run_start's size fields: parameters, parameter_bytes, gradient_bytes (what one all-reduce moves)."""
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    return {
        "parameters": sum(p.numel() for p in params),
        "parameter_bytes": sum(p.numel() * p.element_size() for p in params),
        "gradient_bytes": sum(p.numel() * p.element_size() for p in trainable),
    }
