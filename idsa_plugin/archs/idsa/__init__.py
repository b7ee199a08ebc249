"""IDSA-Net: detection and hyperparameter inference from a state dict, and its size requirements."""
from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .. import SizeRequirements
    from .arch import IDSANet

REQUIRED = ("head.weight", "body_tail.weight", "upsample.0.weight", "body.0.0.stages.0.attn.rel_bias")
SCALES = (2, 3, 4)


def detect(state_dict: dict[str, torch.Tensor]) -> bool:
    return all(key in state_dict for key in REQUIRED)


def hyperparameters(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Infer every constructor argument that the tensors determine (``interp_skip`` is not one)."""
    blocks = {tuple(map(int, m.groups())) for key in state_dict if (m := re.match(r"body\.(\d+)\.(\d+)\.", key))}
    relative, heads = state_dict["body.0.0.stages.0.attn.rel_bias"].shape
    return {
        "scale": math.isqrt(state_dict["upsample.0.weight"].shape[0] // 3),
        "channels": state_dict["head.weight"].shape[0],
        "groups": 1 + max(g for g, _ in blocks),
        "blocks_per_group": 1 + max(b for _, b in blocks),
        "window": (math.isqrt(relative) + 1) // 2,
        "heads": heads,
        "smu_hidden": state_dict["body.0.0.stages.0.smu.dw.weight"].shape[0],
        "share_attention": "body.0.1.stages.0.attn.qk.weight" not in state_dict and (0, 1) in blocks,
        "lkcip": "body.0.0.lkcip.pw.weight" in state_dict,
        "inha": "body.0.0.inha.h_pw.weight" in state_dict,
    }


def build(**hyperparameters: Any) -> IDSANet:
    from .arch import IDSANet

    return IDSANet(**hyperparameters)


def owns(model: nn.Module) -> bool:
    from .arch import IDSANet

    return isinstance(model, IDSANet)


def sizes(model: IDSANet) -> SizeRequirements:
    """Any size from ``window // 2 + 1`` up: the model reflect-pads to a multiple of its window, and a
    reflection must be shorter than the side it reflects (5 px for the usual window of 8)."""
    from .. import SizeRequirements

    return SizeRequirements(minimum=model.window // 2 + 1, window=model.window)
