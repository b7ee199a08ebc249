"""The built-in plugin: registers IDSA-Net's variants and IMDN through the ``register_models`` hook."""
from __future__ import annotations

from functools import partial
from importlib import resources
from typing import Any, Callable

from .hookspecs import hookimpl

IDSA_VARIANTS: dict[str, dict[str, Any]] = {
    "idsa-net": {"channels": 64, "groups": 2, "blocks_per_group": 3, "smu_hidden": 96},
    "idsa-net-s": {"channels": 48, "groups": 2, "blocks_per_group": 2, "smu_hidden": 48},
}
DESCRIPTIONS = {
    "idsa-net": "IDSA-Net at the paper's budget (<= 752K parameters at x4)",
    "idsa-net-s": "IDSA-Net-S, the fast variant for video (about a third of the FLOPs)",
}


def shipped_weights(name: str, scale: int) -> str | None:
    """Path of the weights shipped in ``idsa_plugin/weights`` for a model and scale, if any."""
    candidate = resources.files("idsa_plugin.weights") / f"{name}-x{scale}.safetensors"
    return str(candidate) if candidate.is_file() else None


def _build_idsa(variant: dict[str, Any], scale: int, **hyperparameters: Any):
    from .archs.idsa.arch import IDSANet

    return IDSANet(scale=scale, **{**variant, **hyperparameters})


def _build_imdn(scale: int, **hyperparameters: Any):
    from .archs.imdn.arch import IMDN

    return IMDN(scale=scale, **hyperparameters)


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    for name, variant in IDSA_VARIANTS.items():
        register(
            name,
            partial(_build_idsa, variant),
            scales=(2, 3, 4),
            weights=partial(shipped_weights, name),
            description=DESCRIPTIONS[name],
            architecture="idsa",
        )
    register("imdn", _build_imdn, scales=(2, 3, 4), description="IMDN reference (official weights via weights=)", architecture="imdn")
