"""Architectures that weights files can be recognised as, spandrel style.

Each architecture tells whether a state dict is one of its own and infers the hyperparameters
from the tensor shapes, so a bare ``.pth``/``.safetensors`` file is enough to rebuild its model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from . import idsa, imdn

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Architecture:
    name: str
    detect: Callable[[StateDict], bool]
    hyperparameters: Callable[[StateDict], dict[str, Any]]
    build: Callable[..., nn.Module]


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("idsa", idsa.detect, idsa.hyperparameters, idsa.build),
        Architecture("imdn", imdn.detect, imdn.hyperparameters, imdn.build),
    )
}


def detect_architecture(state_dict: StateDict) -> Architecture | None:
    """The architecture whose keys and shapes the state dict has, or None."""
    return next((arch for arch in ARCHITECTURES.values() if arch.detect(state_dict)), None)
