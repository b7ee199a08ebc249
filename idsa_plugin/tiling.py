"""Tiled inference with overlapping tiles blended by a smooth (raised-cosine) window.

Instance norm and window attention see only their tile, so tiles differ slightly from the whole
frame; overlap and blending keep seams invisible (the difference is measured in benchmarks/).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

Run = Callable[[torch.Tensor], torch.Tensor]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``length`` with tiles of ``tile`` that overlap by at least ``overlap``."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def _ramp(length: int, fade_in: int, fade_out: int, device: torch.device) -> torch.Tensor:
    """1-D weights: raised-cosine fades of the given lengths at either end, 1 in between."""
    w = torch.ones(length, device=device)
    for fade, sl in ((fade_in, slice(0, fade_in)), (fade_out, slice(length - fade_out, length))):
        if fade:
            t = (torch.arange(fade, device=device, dtype=torch.float32) + 0.5) / fade
            ramp = 0.5 - 0.5 * torch.cos(math.pi * t)
            w[sl] = ramp if sl.start == 0 else ramp.flip(0)
    return w


def run_tiled(x: torch.Tensor, run: Run, scale: int, tile: tuple[int, int], overlap: int) -> torch.Tensor:
    """Upscale (N, C, H, W) ``x`` tile by tile (tile = (width, height) in input pixels)."""
    n, c, h, w = x.shape
    tile_w, tile_h = min(tile[0], w), min(tile[1], h)
    if tile_w >= w and tile_h >= h:
        return run(x)
    overlap = min(overlap, tile_w // 2, tile_h // 2)
    ys, xs = tile_starts(h, tile_h, overlap), tile_starts(w, tile_w, overlap)
    out = torch.zeros(n, c, h * scale, w * scale, device=x.device, dtype=torch.float32)
    weight = torch.zeros(1, 1, h * scale, w * scale, device=x.device, dtype=torch.float32)
    for i, y0 in enumerate(ys):
        fade_top = (ys[i - 1] + tile_h - y0) * scale if i else 0
        fade_bottom = (y0 + tile_h - ys[i + 1]) * scale if i + 1 < len(ys) else 0
        wy = _ramp(tile_h * scale, fade_top, fade_bottom, x.device)
        for j, x0 in enumerate(xs):
            fade_left = (xs[j - 1] + tile_w - x0) * scale if j else 0
            fade_right = (x0 + tile_w - xs[j + 1]) * scale if j + 1 < len(xs) else 0
            wx = _ramp(tile_w * scale, fade_left, fade_right, x.device)
            window = wy[:, None] * wx[None, :]
            y = run(x[:, :, y0:y0 + tile_h, x0:x0 + tile_w].contiguous(memory_format=torch.channels_last)).float()
            out[:, :, y0 * scale:(y0 + tile_h) * scale, x0 * scale:(x0 + tile_w) * scale] += y * window
            weight[:, :, y0 * scale:(y0 + tile_h) * scale, x0 * scale:(x0 + tile_w) * scale] += window
    return out / weight
