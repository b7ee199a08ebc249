"""Reading and writing weights: safetensors with metadata, or plain state dicts loaded safely.

Nothing here unpickles arbitrary objects: ``.pth``/``.pt`` files go through
``torch.load(weights_only=True)`` and must hold a plain mapping of tensors.
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic import atomic_path

StateDict = dict[str, torch.Tensor]
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")


class WeightsError(ValueError):
    """A weights file that cannot be used, with a one-line reason."""


def _unwrap(obj: Any, path: Path) -> StateDict:
    for key in WRAPPER_KEYS:
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: not a state dict (expected a mapping of names to tensors, got {type(obj).__name__})")
    prefix = "module."
    return {k.removeprefix(prefix): v for k, v in obj.items()}


def read_weights(path: str | os.PathLike) -> tuple[StateDict, dict[str, str]]:
    """Load a state dict and its metadata (empty for ``.pth``) from ``path`` onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path}: unreadable safetensors file (truncated or corrupt): {exc}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "unsafe content"
        raise WeightsError(f"{path}: refused, it pickles more than tensors ({reason}); only plain state dicts load") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        raise WeightsError(f"{path}: unreadable torch file (truncated or corrupt): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return _unwrap(obj, path), {}


def write_weights(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any], overwrite: bool = True) -> Path:
    """Write safetensors atomically; non-string metadata values are stored as JSON."""
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(path)


def metadata_json(metadata: Mapping[str, str], key: str, default: Any = None) -> Any:
    """A metadata value that was stored as JSON."""
    return json.loads(metadata[key]) if key in metadata else default
