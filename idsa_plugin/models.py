"""``load_model``: registered names or bare weight files to ready-to-run modules."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .archs import detect_architecture, registered_architectures
from .devices import resolve_device, resolve_dtype
from .plugins import get_host
from .weights_io import WeightsError, metadata_json, read_weights


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded: attached to every model that ``load_model`` returns as ``model.idsa_info``."""

    name: str
    scale: int
    weights: str | None
    metadata: dict[str, str] = field(default_factory=dict)


def _known_scale(scale: int | None, found: int, path: Path) -> int:
    if scale is not None and int(scale) != found:
        raise WeightsError(f"{path}: weights are for x{found}, not x{scale}")
    return found


def _from_state_dict(name: str | None, path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str],
                     scale: int | None, expected_arch: str | None) -> tuple[nn.Module, int]:
    arch = detect_architecture(state_dict)
    if expected_arch is not None and (arch is None or arch.name != expected_arch):
        found = arch.name if arch else "an unknown architecture"
        raise WeightsError(f"{path}: weights are {found}, not {name} ({expected_arch})")
    if arch is None:
        known = ", ".join(registered_architectures())
        raise WeightsError(f"{path}: cannot recognise the architecture from its keys (known: {known})")
    hyper = {**arch.hyperparameters(state_dict), **metadata_json(metadata, "hyperparameters", {})}
    found_scale = _known_scale(scale, int(hyper.pop("scale")), path)
    return arch.build(scale=found_scale, **hyper), found_scale


def _load_state(model: nn.Module, state_dict: dict[str, torch.Tensor], path: Path) -> None:
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise WeightsError(f"{path}: weights do not fit the model: {detail}") from None


def load_model(name_or_path: str | os.PathLike, scale: int | None = None, weights: str | os.PathLike | None = None,
               device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> nn.Module:
    """Build a model in eval mode with its weights, on ``device`` (auto) in ``dtype`` (fp32 on CPU).

    ``name_or_path`` is a registered model name (``idsa-net``, ``idsa-net-s``, ``imdn`` or a plugin's)
    or a weights file whose architecture is inferred from its keys. ``weights`` overrides a name's
    shipped weights. A name without weights is an error, never a randomly initialised model.
    """
    host = get_host()
    name = str(name_or_path)
    if name in host.models or name in host.duplicates:
        spec = host.model(name)
        if scale is not None and int(scale) not in spec.scales:
            raise WeightsError(f"{name} supports scales {spec.scales}, not {scale}")
        if scale is None and weights is None:
            raise WeightsError(f"{name}: pass scale= (one of {spec.scales})")
        path = weights
        if path is None:
            path = host.call_first("resolve_weights", model=name, scale=int(scale)) or (spec.weights(int(scale)) if spec.weights else None)
        weightless = spec.factory(int(scale)) if path is None and spec.architecture is None else None
        if weightless is not None and not weightless.state_dict():
            model, state_dict, metadata = weightless, {}, {}  # a model with nothing to learn needs no weights
        elif path is None:
            raise WeightsError(f"no weights for {name} x{scale}: pass weights=FILE (--weights), or train some with `idsa-sr train`")
        else:
            path = Path(path)
            state_dict, metadata = read_weights(path)
            if spec.architecture is not None:
                model, scale = _from_state_dict(name, path, state_dict, metadata, scale, spec.architecture)
            else:
                scale = int(scale if scale is not None else metadata.get("scale", 0)) or None
                if scale is None:
                    raise WeightsError(f"{name}: pass scale=, the weights do not say which scale they are for")
                model = spec.factory(scale)
    else:
        path = Path(name)
        if not path.exists() and not path.suffix:
            raise WeightsError(f"unknown model {name!r}; registered: {', '.join(sorted(host.models))} (or give a weights file)")
        state_dict, metadata = read_weights(path)
        model, scale = _from_state_dict(None, path, state_dict, metadata, scale, None)
        name = metadata.get("variant") or detect_architecture(state_dict).name
    if state_dict:
        _load_state(model, state_dict, path)
    dev = resolve_device(device)
    model = model.eval().requires_grad_(False).to(device=dev, dtype=resolve_dtype(dtype, dev))
    model.idsa_info = ModelInfo(name, int(scale), str(path) if path else None, metadata)
    return model


def build_model(name: str, scale: int, **hyperparameters: Any) -> nn.Module:
    """A freshly initialised registered model (for training), without weights."""
    spec = get_host().model(name)
    if scale not in spec.scales:
        raise ValueError(f"{name} supports scales {spec.scales}, not {scale}")
    return spec.factory(scale, **hyperparameters)
