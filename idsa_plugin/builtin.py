"""The built-in plugin: registers IDSA-Net's variants and IMDN through the ``register_models`` hook."""
from __future__ import annotations

from functools import partial
from importlib import resources
from typing import Any, Callable

from .archs import ARCHITECTURES
from .hookspecs import hookimpl

IDSA_VARIANTS: dict[str, dict[str, Any]] = {
    "idsa-net": {"channels": 64, "groups": 2, "blocks_per_group": 3, "smu_hidden": 96},
    "idsa-net-s": {"channels": 48, "groups": 1, "blocks_per_group": 2, "smu_hidden": 48, "lkcip": False},
}
DESCRIPTIONS = {
    "idsa-net": "IDSA-Net at the paper's budget (<= 752K parameters at x4)",
    "idsa-net-s": "IDSA-Net-S, the fast variant for video: one group of two blocks, no LKCIP (a fifth of the MACs)",
}


def shipped_weights(name: str, scale: int) -> str | None:
    """Path of the weights shipped in ``idsa_plugin/weights`` for a model and scale, if any."""
    candidate = resources.files("idsa_plugin.weights") / f"{name}-x{scale}.safetensors"
    return str(candidate) if candidate.is_file() else None


def _build(architecture: str, variant: dict[str, Any], scale: int, **hyperparameters: Any):
    return ARCHITECTURES[architecture].build(scale=scale, **{**variant, **hyperparameters})


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    for name, variant in IDSA_VARIANTS.items():
        register(
            name,
            partial(_build, "idsa", variant),
            scales=ARCHITECTURES["idsa"].scales,
            weights=partial(shipped_weights, name),
            description=DESCRIPTIONS[name],
            architecture="idsa",
        )
    register("imdn", partial(_build, "imdn", {}), scales=ARCHITECTURES["imdn"].scales, description="IMDN reference (official weights via weights=)", architecture="imdn")
