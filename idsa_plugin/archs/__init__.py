"""Architectures that weights files can be recognised as, spandrel style.

Each architecture tells whether a state dict is one of its own and infers the hyperparameters
from the tensor shapes, so a bare ``.pth``/``.safetensors`` file is enough to rebuild its model.
It also describes its models: the input sizes they take, the scales and the precisions they support.
The built-in ones are listed here; plugins add theirs through the ``register_architectures`` hook.
Importing this package does not import torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from . import idsa, imdn

if TYPE_CHECKING:
    import torch
    from torch import nn

StateDict = dict[str, "torch.Tensor"]


@dataclass(frozen=True)
class SizeRequirements:
    """The input sizes a model takes (``minimum``, ``multiple_of``) and those it runs best at (``window``)."""

    minimum: int = 1
    """The smallest height and width it accepts."""
    multiple_of: int = 1
    """Height and width must be multiples of this (1: any size)."""
    window: int | None = None
    """Its attention window, if any: multiples of it need no internal padding, and tiles should be too."""


def any_size(model: nn.Module) -> SizeRequirements:
    """The requirements of a fully convolutional model: none."""
    return SizeRequirements()


@dataclass(frozen=True)
class Architecture:
    """How to recognise, rebuild and run the models of one architecture."""

    name: str
    detect: Callable[[StateDict], bool]
    hyperparameters: Callable[[StateDict], dict[str, Any]]
    build: Callable[..., nn.Module]
    owns: Callable[[nn.Module], bool]
    """Whether a loaded module is one of this architecture's models."""
    scales: tuple[int, ...]
    """The upscaling factors it is built and trained for."""
    sizes: Callable[[nn.Module], SizeRequirements] = any_size
    supports_half: bool = True
    supports_bfloat16: bool = True


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("idsa", idsa.detect, idsa.hyperparameters, idsa.build, idsa.owns, idsa.SCALES, idsa.sizes),
        Architecture("imdn", imdn.detect, imdn.hyperparameters, imdn.build, imdn.owns, imdn.SCALES),
    )
}


def registered_architectures() -> dict[str, Architecture]:
    """The built-in architectures and those that plugins register, by name."""
    from ..plugins import get_host

    return get_host().architectures()


def detect_architecture(state_dict: StateDict, architectures: Iterable[Architecture] | None = None) -> Architecture | None:
    """The architecture (of ``architectures``, default all registered) whose keys and shapes the state dict has, or None."""
    candidates = registered_architectures().values() if architectures is None else architectures
    return next((arch for arch in candidates if arch.detect(state_dict)), None)


def architecture_of(model: nn.Module) -> Architecture | None:
    """The registered architecture that a loaded model is one of, or None for a model of no known architecture."""
    return next((arch for arch in registered_architectures().values() if arch.owns(model)), None)


def size_requirements(model: nn.Module) -> SizeRequirements:
    """The input sizes ``model`` takes; no requirements for a model of no known architecture."""
    arch = architecture_of(model)
    return arch.sizes(model) if arch is not None else SizeRequirements()


def supported_scales() -> tuple[int, ...]:
    """Every scale that some registered architecture supports, ascending: the command line's ``--scale`` choices."""
    return tuple(sorted({scale for arch in registered_architectures().values() for scale in arch.scales}))
