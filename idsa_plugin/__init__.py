"""IDSA-Net super-resolution for video pipelines.

``load_model`` builds a model with its weights; ``frame_filter`` wraps the streaming engine as a
plain callable. The heavy modules (torch) load on first use, so ``import idsa_plugin`` is cheap.
"""
from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "load_model", "frame_filter", "Engine", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from .models import load_model

        return load_model
    if name == "Engine":
        from .engine import Engine

        return Engine
    if name == "frame_filter":
        from .engine import frame_filter

        return frame_filter
    raise AttributeError(f"module 'idsa_plugin' has no attribute {name!r}")
