"""IDSA-Net: information distillation with shared window attention.

Our reconstruction of the architecture described in ``shared/docs/IDSA-NET.md``:
attention-sharing distillation blocks (ASDB) whose window-attention maps are computed by the
first block of each group and reused by the following blocks, sequence modeling units (gated
depthwise-conv feed-forward), LKCIP (channel shuffle + large-kernel attention), INHA (H/W-pooled
channel attention with 1-D depthwise separable convs, instance-norm spatial attention) and a
PixelShuffle upsampler on top of an optional bicubic skip of the input.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

AttentionMaps = list[torch.Tensor]
FEATURE_BOUND = 16.0  # clamp of the SMU gate and of every block's output


class BSConv(nn.Module):
    """Blueprint separable conv: pointwise mix, then depthwise 3x3, then GELU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pw = nn.Conv2d(in_channels, out_channels, 1)
        self.dw = nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dw(self.pw(x)))


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * windows, window*window, C)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // window, window, w // window, window)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(-1, window * window, c)


def window_merge(x: torch.Tensor, window: int, shape: torch.Size) -> torch.Tensor:
    """Inverse of :func:`window_partition`."""
    b, c, h, w = shape
    x = x.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)


class WindowAttention(nn.Module):
    """Window self-attention (q = k, relative position bias) with optional map reuse.

    A module built with ``computes_maps=True`` owns the Q/K projection and the position bias and
    returns its softmax maps; one built with ``computes_maps=False`` projects only V and applies
    maps handed to it by an earlier block. With ``shift`` the windows are displaced by that many
    pixels (Swin): windows that wrap around the border are masked so that no pixel attends to the
    opposite edge of the frame or tile.
    """

    def __init__(self, dim: int, window: int, heads: int, computes_maps: bool) -> None:
        super().__init__()
        self.window, self.heads = window, heads
        self.v = nn.Conv2d(dim, dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        if computes_maps:
            self.qk = nn.Conv2d(dim, dim, 1)
            self.rel_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
            coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
            rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
            self.register_buffer("rel_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)

    def _heads(self, tokens: torch.Tensor) -> torch.Tensor:
        n, t, c = tokens.shape
        return tokens.view(n, t, self.heads, c // self.heads).transpose(1, 2)

    def _band_mask(self, size: int, shift: int, device: torch.device) -> torch.Tensor:
        """(size // window, window) -> (windows along one axis, window, window) additive mask: -inf between
        positions that the cyclic shift brought together (only the last window along the axis has any)."""
        position = torch.arange(size, device=device)
        band = ((position >= size - self.window).long() + (position >= size - shift).long()).view(-1, self.window)
        return torch.zeros(band.shape[0], self.window, self.window, device=device).masked_fill(
            band[:, :, None] != band[:, None, :], float("-inf"))

    def attention_maps(self, x: torch.Tensor, shift: int) -> torch.Tensor:
        q = self._heads(window_partition(self.qk(x), self.window))
        logits = (q * q.shape[-1] ** -0.5) @ q.transpose(-2, -1) + self.rel_bias[self.rel_index].permute(2, 0, 1)
        if shift:  # a token (y, x) of window (r, c) is cut off by its row band or its column band: the masks add
            b, _, h, w = x.shape
            ws, t = self.window, logits.shape[-1]
            rows = self._band_mask(h, shift, x.device)[:, :, None, :, None].expand(-1, -1, ws, -1, ws).reshape(-1, t, t)
            cols = self._band_mask(w, shift, x.device)[:, None, :, None, :].expand(-1, ws, -1, ws, -1).reshape(-1, t, t)
            logits = logits.view(b, rows.shape[0], cols.shape[0], -1, t, t) + rows[:, None, None].to(logits.dtype) \
                + cols[None, :, None].to(logits.dtype)
            logits = logits.flatten(0, 2)
        return torch.softmax(logits, dim=-1)

    def forward(self, x: torch.Tensor, maps: torch.Tensor | None, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(2, 3))
        if maps is None:
            maps = self.attention_maps(x, shift)
        v = self._heads(window_partition(self.v(x), self.window))
        out = window_merge((maps @ v).transpose(1, 2).flatten(2), self.window, x.shape)
        if shift:
            out = torch.roll(out, shifts=(shift, shift), dims=(2, 3))
        return self.proj(out), maps


class SequenceModelingUnit(nn.Module):
    """Gated depthwise-conv feed-forward: min(gelu(gate), FEATURE_BOUND) * dwconv(value), projected back."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, 2 * hidden, 1)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.fc1(x).chunk(2, dim=1)
        return self.fc2(F.gelu(gate).clamp(max=FEATURE_BOUND) * self.dw(value))


class LKCIP(nn.Module):
    """Large-kernel channel information purification: shuffle, LKA re-weighting, 1x1 fuse."""

    def __init__(self, dim: int, shuffle_groups: int = 4) -> None:
        super().__init__()
        self.shuffle_groups = shuffle_groups
        self.dw = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.dw_dilated = nn.Conv2d(dim, dim, 7, padding=9, dilation=3, groups=dim)
        self.pw = nn.Conv2d(dim, dim, 1)
        self.fuse = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.view(b, self.shuffle_groups, c // self.shuffle_groups, h, w).transpose(1, 2).reshape(b, c, h, w)
        return self.fuse(x * self.pw(self.dw_dilated(self.dw(x))))


class INHA(nn.Module):
    """Instance-normalization hybrid attention.

    Channel attention from height-pooled and width-pooled descriptors, each through a 1-D
    depthwise separable conv without channel reduction; spatial attention from instance-normalised
    features through a depthwise conv.
    """

    def __init__(self, dim: int, kernel: int = 3) -> None:
        super().__init__()
        pad = kernel // 2
        self.h_dw = nn.Conv2d(dim, dim, (kernel, 1), padding=(pad, 0), groups=dim)
        self.h_pw = nn.Conv2d(dim, dim, 1)
        self.w_dw = nn.Conv2d(dim, dim, (1, kernel), padding=(0, pad), groups=dim)
        self.w_pw = nn.Conv2d(dim, dim, 1)
        self.spatial = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        along_h = torch.sigmoid(self.h_pw(self.h_dw(x.mean(dim=3, keepdim=True))))
        along_w = torch.sigmoid(self.w_pw(self.w_dw(x.mean(dim=2, keepdim=True))))
        spatial = torch.sigmoid(self.spatial(F.instance_norm(x)))
        return x * along_h * along_w * spatial


class ChannelAttention(nn.Module):
    """Plain global-pool channel attention (the ablation's stand-in for INHA)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(x.mean(dim=(2, 3), keepdim=True)))


class DistillationStage(nn.Module):
    """LFE, split off C/4 distilled channels, window attention and SMU on the rest."""

    def __init__(self, in_channels: int, channels: int, window: int, heads: int, smu_hidden: int, computes_maps: bool) -> None:
        super().__init__()
        self.distilled = channels // 4
        self.rest = rest = channels - self.distilled
        self.lfe = BSConv(in_channels, channels)
        self.attn = WindowAttention(rest, window, heads, computes_maps)
        self.smu = SequenceModelingUnit(rest, smu_hidden)

    def forward(self, x: torch.Tensor, maps: torch.Tensor | None, shift: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        distilled, rest = self.lfe(x).split([self.distilled, self.rest], dim=1)
        attended, maps = self.attn(rest, maps, shift)
        rest = rest + attended
        rest = rest + self.smu(rest)
        return distilled, rest, maps


class ASDB(nn.Module):
    """Attention-sharing distillation block."""

    stages_count = 3

    def __init__(self, channels: int, window: int, heads: int, smu_hidden: int, computes_maps: bool, lkcip: bool, inha: bool) -> None:
        super().__init__()
        rest = channels - channels // 4
        self.stages = nn.ModuleList(
            DistillationStage(channels if i == 0 else rest, channels, window, heads, smu_hidden, computes_maps)
            for i in range(self.stages_count)
        )
        self.last = nn.Conv2d(rest, channels // 4, 3, padding=1)
        self.lkcip = LKCIP(channels) if lkcip else nn.Identity()
        self.inha = INHA(channels) if inha else ChannelAttention(channels)

    def forward(self, x: torch.Tensor, maps: AttentionMaps | None, shift: int) -> tuple[torch.Tensor, AttentionMaps]:
        distilled, new_maps, f = [], [], x
        for i, stage in enumerate(self.stages):
            d, f, m = stage(f, None if maps is None else maps[i], shift)
            distilled.append(d)
            new_maps.append(m)
        distilled.append(self.last(f))
        y = self.inha(self.lkcip(torch.cat(distilled, dim=1)))
        return (x + y).clamp(-FEATURE_BOUND, FEATURE_BOUND), new_maps


class IDSANet(nn.Module):
    """IDSA-Net super-resolution network for RGB input in [0, 1]."""

    def __init__(
        self,
        scale: int = 4,
        channels: int = 64,
        groups: int = 2,
        blocks_per_group: int = 3,
        window: int = 8,
        heads: int = 1,
        smu_hidden: int = 96,
        share_attention: bool = True,
        lkcip: bool = True,
        inha: bool = True,
        interp_skip: bool = True,
    ) -> None:
        super().__init__()
        if channels % 4 or (channels - channels // 4) % heads:
            raise ValueError(f"channels={channels} must be divisible by 4 and leave a multiple of heads={heads}")
        self.scale, self.window = scale, window
        self.share_attention, self.interp_skip = share_attention, interp_skip
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.ModuleList(
            nn.ModuleList(
                ASDB(channels, window, heads, smu_hidden, computes_maps=(b == 0 or not share_attention), lkcip=lkcip, inha=inha)
                for b in range(blocks_per_group)
            )
            for _ in range(groups)
        )
        self.body_tail = nn.Conv2d(channels, channels, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(channels, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        if interp_skip:  # start exactly at bicubic quality: the network learns the residual
            nn.init.zeros_(self.upsample[0].weight)
            nn.init.zeros_(self.upsample[0].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.window, -w % self.window
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x
        f0 = self.head(padded)
        f = f0
        for g, group in enumerate(self.body):
            shift = self.window // 2 if g % 2 else 0  # every other group attends in shifted windows
            maps: AttentionMaps | None = None
            for block in group:
                f, computed = block(f, maps, shift)
                maps = computed if self.share_attention else None
        out = self.upsample(self.body_tail(f) + f0)[..., : h * self.scale, : w * self.scale]
        if self.interp_skip:
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return out
