"""IDSA-Net as a spandrel architecture, so spandrel-based hosts (chaiNNer, ComfyUI) load our weights.

    import idsa_plugin.filters.spandrel as idsa_spandrel
    idsa_spandrel.install()                      # adds IDSA-Net to spandrel.MAIN_REGISTRY
    model = spandrel.ModelLoader().load_from_file("idsa-net-s-x2.safetensors")

Detection and hyperparameters come from the state dict's keys and shapes (``interp_skip``, not
visible in tensors, is assumed on, as in every shipped file).
"""
from __future__ import annotations

from spandrel import MAIN_REGISTRY, ArchSupport, Architecture, ImageModelDescriptor, ModelTiling, SizeRequirements

from idsa_plugin.archs import ARCHITECTURES
from idsa_plugin.archs.idsa.arch import IDSANet

IDSA = ARCHITECTURES["idsa"]


class IDSANetArch(Architecture[IDSANet]):
    """spandrel's view of IDSA-Net."""

    def __init__(self) -> None:
        super().__init__(id="IDSA-Net", detect=IDSA.detect)

    def load(self, state_dict: dict) -> ImageModelDescriptor[IDSANet]:
        hyper = IDSA.hyperparameters(state_dict)
        model = IDSA.build(**hyper)
        sizes = IDSA.sizes(model)
        return ImageModelDescriptor(
            model, state_dict, architecture=self, purpose="SR",
            tags=[f"{hyper['channels']}nf", f"{hyper['groups']}x{hyper['blocks_per_group']}b", f"w{hyper['window']}"],
            supports_half=IDSA.supports_half, supports_bfloat16=IDSA.supports_bfloat16, scale=hyper["scale"],
            input_channels=3, output_channels=3,
            # spandrel pads smaller inputs up to the minimum and crops the output
            size_requirements=SizeRequirements(minimum=sizes.minimum, multiple_of=sizes.multiple_of),
            tiling=ModelTiling.DISCOURAGED,  # instance norm and window attention see only the tile
        )


def install() -> None:
    """Register IDSA-Net in spandrel's main registry (idempotent)."""
    arch = IDSANetArch()
    if arch.id not in MAIN_REGISTRY:
        MAIN_REGISTRY.add(ArchSupport.from_architecture(arch))
