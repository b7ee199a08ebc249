"""IMDN: detection and hyperparameter inference from a state dict."""
from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .arch import IMDN

SCALES = (2, 3, 4)


def detect(state_dict: dict[str, torch.Tensor]) -> bool:
    return all(k in state_dict for k in ("fea_conv.weight", "IMDB1.c1.weight", "LR_conv.weight", "upsampler.0.weight"))


def hyperparameters(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    return {
        "scale": math.isqrt(state_dict["upsampler.0.weight"].shape[0] // 3),
        "channels": state_dict["fea_conv.weight"].shape[0],
        "blocks": len({m.group(1) for key in state_dict if (m := re.match(r"IMDB(\d+)\.", key))}),
    }


def build(**hyperparameters: Any) -> IMDN:
    from .arch import IMDN

    return IMDN(**hyperparameters)


def owns(model: nn.Module) -> bool:
    from .arch import IMDN

    return isinstance(model, IMDN)
