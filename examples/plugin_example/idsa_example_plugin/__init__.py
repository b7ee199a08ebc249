"""An example third-party plugin for idsa-plugin.

It registers ``example-bilinear`` (a weight-free bilinear upscaler: stands for any model a plugin
brings) and the post filter ``example-sharpen`` (an unsharp mask on the upscaled batch).
"""
from __future__ import annotations

import idsa_plugin


def build_bilinear(scale: int):
    import torch
    import torch.nn.functional as F

    class Bilinear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = scale

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)

    return Bilinear()


def sharpen(batch, amount: float = 0.5):
    """Unsharp mask: batch + amount * (batch - blur(batch)), on (N, 3, H, W) floats in [0, 1]."""
    import torch.nn.functional as F

    blurred = F.avg_pool2d(F.pad(batch, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return (batch + amount * (batch - blurred)).clamp(0, 1)


@idsa_plugin.hookimpl
def register_models(register):
    register("example-bilinear", build_bilinear, scales=(2, 3, 4), description="bilinear upscaling (example plugin)")


@idsa_plugin.hookimpl
def register_frame_filters(register):
    register("example-sharpen", sharpen, description="unsharp mask (example plugin)")
