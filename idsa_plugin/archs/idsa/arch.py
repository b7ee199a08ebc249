"""IDSA-Net: information distillation with shared window attention.

Our reconstruction of the architecture described in ``shared/docs/IDSA-NET.md``:
attention-sharing distillation blocks (ASDB) whose window-attention maps are computed by the
first block of each group and reused by the following blocks, sequence modeling units (gated
depthwise-conv feed-forward), LKCIP (channel shuffle + large-kernel attention), INHA (H/W-pooled
channel attention with 1-D depthwise separable convs, instance-norm spatial attention) and a
PixelShuffle upsampler on top of an optional bicubic skip of the input.

The body runs channels-last: features are (B, H, W, C) tensors, so 1x1 convs are matmuls over the
last axis (``pointwise``), window partition is one copy, and depthwise convs see a channels-last
NCHW view of the same memory (``spatial``), which oneDNN runs without layout copies. The dilated
7x7 depthwise conv of LKCIP runs as a plain 7x7 on the 3x3 phases of its input. Parameters are
those of ``nn.Conv2d`` modules, so state dicts are the conventional NCHW ones. In bf16 the bicubic
skip and the final add stay in float32.
"""
from __future__ import annotations

import contextlib
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

AttentionMaps = list[torch.Tensor]

FEATURE_BOUND = 16.0
"""Clamp of the SMU gate and of every block's output. The gate is quadratic in the features and the blocks
chain: unbounded, pixel checkerboards and stripes (and, for some weights, uniform noise) drive the output
to 1e11-1e27 or NaN. On natural images neither clamp bites: over 60 T91/BSD200 LR crops the largest values
are 6.4 (gate) and 3.3 (block output) for every shipped model, whose outputs there are unchanged (tested)."""


@functools.cache
def _onednn_fuses(dtype: torch.dtype) -> bool:
    """Whether oneDNN's fused linear and conv ops take ``dtype`` on this CPU: float32 always; bf16 and fp16 only
    where the CPU has their instructions (on an AVX2-only CPU they fail to build a primitive, measured on Zen 3)."""
    if dtype == torch.bfloat16:
        return torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if dtype == torch.float16:
        return torch.ops.mkldnn._is_mkldnn_fp16_supported()
    return dtype == torch.float32


def _eager_cpu_inference(x: torch.Tensor) -> bool:
    """Inference on the CPU outside tracing, compilation and autocast, in a dtype that oneDNN's fused ops take here:
    where those ops may stand in for aten's."""
    return (x.device.type == "cpu" and not torch.is_grad_enabled() and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling() and not torch.is_autocast_enabled("cpu") and _onednn_fuses(x.dtype))


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast switched off on ``device`` (CPU and CUDA; other devices, such as meta, have none to switch off)."""
    return torch.autocast(device.type, enabled=False) if device.type in ("cpu", "cuda") else contextlib.nullcontext()


UNARY = {"gelu": F.gelu, "sigmoid": torch.sigmoid}
BINARY = {"add": torch.add, "mul": torch.mul}


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, then: str | None = None,
           other: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``, then optionally ``gelu``, or ``add``/``mul`` with ``other``. In CPU inference oneDNN does the
    bias and that step inside the matmul (aten's addmm first copies the bias into the whole output: 30% slower,
    measured); elsewhere (training, tracing, compiling, CUDA) they are separate ops."""
    if _eager_cpu_inference(x):
        if then in BINARY:
            return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, bias, then)
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, then or "none", [], "none" if then else "")
    y = F.linear(x, weight, bias)
    if then in BINARY:
        return BINARY[then](y, other)
    return UNARY[then](y) if then else y


def pointwise(conv: nn.Conv2d, x: torch.Tensor, then: str | None = None, other: torch.Tensor | None = None) -> torch.Tensor:
    """A 1x1 conv on channels-last features (..., C): :func:`linear` over the last axis."""
    return linear(x, conv.weight.flatten(1), conv.bias, then, other)


def spatial(conv: nn.Conv2d, x: torch.Tensor, then: str | None = None) -> torch.Tensor:
    """Any conv on (B, H, W, C) features through a channels-last NCHW view (no copy either way), then optionally
    ``gelu`` or ``sigmoid`` (fused by oneDNN in CPU inference: one pass over the output instead of two)."""
    view = x.permute(0, 3, 1, 2)
    if then and _eager_cpu_inference(x):
        y = torch.ops.mkldnn._convolution_pointwise(view, conv.weight, conv.bias, conv.padding, conv.stride, conv.dilation,
                                                    conv.groups, then, [], "none" if then == "gelu" else "")
    else:
        y = conv(view)
        y = UNARY[then](y) if then else y
    return y.permute(0, 2, 3, 1)


def dilated_by_phases(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A stride-1 depthwise conv of dilation d on (B, H, W, C), as an undilated conv on each of the d x d
    phases x[i::d, j::d] (zero-padded to a multiple of d, so the borders see zeros exactly as before)."""
    d = conv.dilation[0]
    b, h, w, c = x.shape
    pad_h, pad_w = -h % d, -w % d
    x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h)) if pad_h or pad_w else x
    hd, wd = (h + pad_h) // d, (w + pad_w) // d
    phases = x.view(b, hd, d, wd, d, c).permute(0, 2, 4, 1, 3, 5).reshape(b * d * d, hd, wd, c)
    padding = conv.padding[0] // d
    y = F.conv2d(phases.permute(0, 3, 1, 2), conv.weight, conv.bias, padding=padding, groups=conv.groups)
    y = y.permute(0, 2, 3, 1).reshape(b, d, d, hd, wd, c).permute(0, 3, 1, 4, 2, 5).reshape(b, hd * d, wd * d, c)
    return y[:, :h, :w] if pad_h or pad_w else y


def spatial_mean(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Mean of (B, H, W, C) features over H (1,), W (2,) or both (1, 2), keeping the axes, as a matmul with ones:
    reductions over an inner axis of a bf16 tensor convert the whole tensor to float32 first (measured 4x slower)."""
    b, h, w, c = x.shape
    rows = {(1,): (b, h, w * c), (2,): (b * h, w, c), (1, 2): (b, h * w, c)}[dims]
    ones = x.new_ones(1, rows[1])
    shape = (b, 1 if 1 in dims else h, 1 if 2 in dims else w, c)
    return torch.matmul(ones, x.reshape(rows)).view(shape) / rows[1]


def cubic_phase_taps(scale: int, a: float = -0.75) -> list[list[float]]:
    """Weights over the input offsets -2..2 of each of the ``scale`` output phases of bicubic upscaling as
    ``F.interpolate(mode="bicubic", align_corners=False)`` does it (Keys' cubic with a = -0.75)."""
    def cubic(t: float) -> float:
        t = abs(t)
        if t <= 1:
            return ((a + 2) * t - (a + 3)) * t * t + 1
        return (((t - 5) * t + 8) * t - 4) * a if t < 2 else 0.0

    rows = []
    for phase in range(scale):
        source = (phase + 0.5) / scale - 0.5
        first = math.floor(source)
        row = [0.0] * 5
        for tap in range(-1, 3):
            row[first + tap + 2] += cubic(tap - (source - first))
        rows.append(row)
    return rows


@functools.lru_cache(maxsize=16)
def _bicubic_kernel(scale: int, channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The (channels * scale * scale, 1, 5, 5) weights of :func:`bicubic_phases`, built once per setting (a
    constant of static shape when traced; an ordinary tensor even if first built under inference mode)."""
    taps = cubic_phase_taps(scale)
    phases = [[[[r * t for t in columns] for r in rows]] for rows in taps for columns in taps]  # phase (i, j): outer product
    with torch.inference_mode(False):
        return torch.tensor(phases * channels, dtype=dtype, device=device)


def bicubic_phases(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upscaling of (B, C, H, W) as the (B, H, W, C * scale * scale) input of a pixel shuffle: one fixed
    5x5 depthwise conv per output phase over the edge-padded input (F.interpolate clamps at the borders too).
    Equal to ``F.interpolate`` to 1e-5, 2x faster (measured), and added to the upsampler's output before the shuffle."""
    c = x.shape[1]
    kernel = _bicubic_kernel(scale, c, x.dtype, x.device)
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate").contiguous(memory_format=torch.channels_last)
    return F.conv2d(padded, kernel, groups=c).permute(0, 2, 3, 1)


class BSConv(nn.Module):
    """Blueprint separable conv: pointwise mix, then depthwise 3x3, then GELU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pw = nn.Conv2d(in_channels, out_channels, 1)
        self.dw = nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spatial(self.dw, pointwise(self.pw, x), then="gelu")


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * windows, window * window, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.transpose(2, 3).reshape(-1, window * window, c)


def window_merge(tokens: torch.Tensor, window: int, shape: torch.Size) -> torch.Tensor:
    """Inverse of :func:`window_partition` for features of ``shape`` (B, H, W, C)."""
    b, h, w, c = shape
    return tokens.view(b, h // window, w // window, window, window, c).transpose(2, 3).reshape(b, h, w, c)


class WindowAttention(nn.Module):
    """Window self-attention (q = k, relative position bias) with optional map reuse, on (B, H, W, C).

    A module built with ``computes_maps=True`` owns the Q/K projection and the position bias and
    returns its softmax maps; one built with ``computes_maps=False`` projects only V and applies
    maps handed to it by an earlier block. With ``shift`` the windows are displaced by that many
    pixels (Swin): windows that wrap around the border are masked so that no pixel attends to the
    opposite edge of the frame or tile. ``forward`` returns ``x + attention(x)``: the residual is
    added to the tokens before they are merged back, which saves a pass over the features.
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
        if self.heads == 1:
            return tokens.unsqueeze(1)
        n, t, c = tokens.shape
        return tokens.view(n, t, self.heads, c // self.heads).transpose(1, 2)

    def _mask_wrapped(self, logits: torch.Tensor, shape: torch.Size, shift: int) -> torch.Tensor:
        """-inf between tokens that the cyclic shift brought together from opposite edges of the frame.

        Only the last window row and the last window column hold such pairs: there a window's first
        ``window - shift`` rows (columns) came from the bottom (right) of the frame, the others from the top (left).
        Each mask broadcasts over the other axis of the window grid: no mask of the size of ``logits`` is built.
        """
        b, h, w, _ = shape
        ws, t = self.window, logits.shape[-1]
        band = torch.arange(ws, device=logits.device) >= ws - shift
        cut = band[:, None] != band[None, :]
        rows = cut[:, None, :, None].expand(ws, ws, ws, ws).reshape(t, t)
        cols = cut[None, :, None, :].expand(ws, ws, ws, ws).reshape(t, t)
        last_row = torch.arange(h // ws, device=logits.device) == h // ws - 1
        last_col = torch.arange(w // ws, device=logits.device) == w // ws - 1
        grid = logits.view(b, h // ws, w // ws, -1, t, t)
        if torch.jit.is_tracing():  # the ONNX exporter loses in-place writes through views
            grid = grid.masked_fill(last_row[:, None, None, None, None] & rows, float("-inf"))
            return grid.masked_fill(last_col[None, :, None, None, None] & cols, float("-inf")).flatten(0, 2)
        grid[:, -1].masked_fill_(rows, float("-inf"))  # in place: two copies of the logits fewer
        grid[:, :, -1].masked_fill_(cols, float("-inf"))
        return logits

    def attention_maps(self, tokens: torch.Tensor, shape: torch.Size, shift: int) -> torch.Tensor:
        """Softmax maps (windows, heads, T, T) of partitioned (shifted) tokens of features of ``shape``."""
        q = self._heads(pointwise(self.qk, tokens))
        bias = self.rel_bias[self.rel_index].permute(2, 0, 1).to(q.dtype)
        scale = q.shape[-1] ** -0.5
        if self.heads == 1:  # bias, scale and product in one pass
            logits = torch.baddbmm(bias, q.squeeze(1), q.squeeze(1).transpose(1, 2), alpha=scale).unsqueeze(1)
        else:
            logits = torch.matmul(q * scale, q.transpose(-2, -1)) + bias
        if shift:
            logits = self._mask_wrapped(logits, shape, shift)
        return torch.softmax(logits, dim=-1)

    def _shifted_order(self, h: int, w: int, shift: int, device: torch.device) -> torch.Tensor:
        """Flat pixel index of every token of the windows displaced by ``shift`` (cyclically), in partition order."""
        ws = self.window
        rows = (torch.arange(h, device=device).view(-1, ws) + shift) % h
        cols = (torch.arange(w, device=device).view(-1, ws) + shift) % w
        return (rows[:, None, :, None] * w + cols[None, :, None, :]).flatten()

    def forward(self, x: torch.Tensor, maps: torch.Tensor | None, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        b, h, w, c = x.shape
        if shift:  # roll and partition in one gather (a roll alone costs two copies)
            order = self._shifted_order(h, w, shift, x.device)
            tokens = x.reshape(b, h * w, c).index_select(1, order).view(-1, self.window ** 2, c)
        else:
            tokens = window_partition(x, self.window)
        if maps is None:
            maps = self.attention_maps(tokens, x.shape, shift)
        attended = torch.matmul(maps, self._heads(pointwise(self.v, tokens)))
        attended = attended.squeeze(1) if self.heads == 1 else attended.transpose(1, 2).flatten(2)
        tokens = pointwise(self.proj, attended, then="add", other=tokens)
        if not shift:
            return window_merge(tokens, self.window, x.shape), maps
        inverse = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=x.device))
        return tokens.view(b, h * w, c).index_select(1, inverse).view(b, h, w, c), maps


class SequenceModelingUnit(nn.Module):
    """Gated depthwise-conv feed-forward: min(gelu(gate), FEATURE_BOUND) * dwconv(value), projected back;
    ``forward`` adds it to ``x``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.fc1 = nn.Conv2d(dim, 2 * hidden, 1)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias, n = self.fc1.weight.flatten(1), self.fc1.bias, self.hidden  # two matmuls: contiguous halves
        value, gate = linear(x, weight[:n], bias[:n]), linear(x, weight[n:], bias[n:], then="gelu").clamp(max=FEATURE_BOUND)
        return pointwise(self.fc2, gate * spatial(self.dw, value), then="add", other=x)


class LKCIP(nn.Module):
    """Large-kernel channel information purification: shuffle, LKA re-weighting, 1x1 fuse."""

    def __init__(self, dim: int, shuffle_groups: int = 4) -> None:
        super().__init__()
        self.shuffle_groups = shuffle_groups
        self.dw = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.dw_dilated = nn.Conv2d(dim, dim, 7, padding=9, dilation=3, groups=dim)
        self.pw = nn.Conv2d(dim, dim, 1)
        self.fuse = nn.Conv2d(dim, dim, 1)

    def _large_kernels(self, x: torch.Tensor) -> torch.Tensor:
        """The 5x5 and dilated 7x7 depthwise convs; under CPU autocast (training) in float32, since oneDNN's
        bf16 weight gradient of large depthwise kernels is 3x slower than float32's (measured, 2-core AMX Xeon)."""
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return dilated_by_phases(self.dw_dilated, spatial(self.dw, x.float())).to(x.dtype)
        return dilated_by_phases(self.dw_dilated, spatial(self.dw, x))

    def purify(self, shuffled: torch.Tensor) -> torch.Tensor:
        """LKA re-weighting and fuse of features whose channels are already shuffled."""
        return pointwise(self.fuse, pointwise(self.pw, self._large_kernels(shuffled), then="mul", other=shuffled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        return self.purify(x.view(b, h, w, self.shuffle_groups, c // self.shuffle_groups).transpose(3, 4).reshape(b, h, w, c))


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

    @staticmethod
    def instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
        """Per sample and channel over H and W (``F.instance_norm`` without affine)."""
        centred = x - spatial_mean(x, (1, 2))
        return centred * torch.rsqrt(spatial_mean(torch.square(centred), (1, 2)) + eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        along_h = torch.sigmoid(pointwise(self.h_pw, spatial(self.h_dw, spatial_mean(x, (2,)))))
        along_w = torch.sigmoid(pointwise(self.w_pw, spatial(self.w_dw, spatial_mean(x, (1,)))))
        gate = spatial(self.spatial, self.instance_norm(x), then="sigmoid")
        return x * along_h * along_w * gate


class ChannelAttention(nn.Module):
    """Plain global-pool channel attention (the ablation's stand-in for INHA)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(pointwise(self.fc, spatial_mean(x, (1, 2))))


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
        features = self.lfe(x)
        rest, maps = self.attn(features[..., self.distilled:], maps, shift)
        rest = self.smu(rest)
        return features[..., : self.distilled], rest, maps


class ASDB(nn.Module):
    """Attention-sharing distillation block; its output is clamped to +-FEATURE_BOUND."""

    stages_count = 3

    def __init__(self, channels: int, window: int, heads: int, smu_hidden: int, computes_maps: bool, lkcip: bool, inha: bool) -> None:
        super().__init__()
        rest = channels - channels // 4
        self.stages = nn.ModuleList(
            DistillationStage(channels if i == 0 else rest, channels, window, heads, smu_hidden, computes_maps)
            for i in range(self.stages_count)
        )
        self.last = nn.Conv2d(rest, channels // 4, 3, padding=1)
        self.lkcip = LKCIP(channels) if lkcip else None
        self.inha = INHA(channels) if inha else ChannelAttention(channels)

    def forward(self, x: torch.Tensor, maps: AttentionMaps | None, shift: int) -> tuple[torch.Tensor, AttentionMaps]:
        distilled, new_maps, f = [], [], x
        for i, stage in enumerate(self.stages):
            d, f, m = stage(f, None if maps is None else maps[i], shift)
            distilled.append(d)
            new_maps.append(m)
        distilled.append(spatial(self.last, f))
        if self.lkcip is None:
            fused = torch.cat(distilled, dim=-1)
        else:  # the four C/4 pieces are LKCIP's shuffle groups: interleaving them is the shuffle, in one copy
            b, h, w, _ = x.shape
            fused = self.lkcip.purify(torch.stack(distilled, dim=-1).view(b, h, w, -1))
        return (x + self.inha(fused)).clamp(-FEATURE_BOUND, FEATURE_BOUND), new_maps


class IDSANet(nn.Module):
    """IDSA-Net super-resolution network for RGB input in [0, 1]: (B, 3, H, W) -> (B, 3, sH, sW).

    Whatever its parameters' dtype, it takes and returns float32: the body runs in the parameters' dtype,
    the bicubic skip and the final add in float32 (``takes_float32_input`` tells the engine so).
    """

    takes_float32_input = True

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

    def _pixel_shuffle(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3 s s) -> (B, 3, sH, sW), as ``nn.PixelShuffle`` on the NCHW view."""
        b, h, w, _ = x.shape
        s = self.scale
        return x.view(b, h, w, 3, s, s).permute(0, 3, 1, 4, 2, 5).reshape(b, 3, h * s, w * s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.window, -w % self.window
        body_input = x.to(self.head.weight.dtype)
        padded = F.pad(body_input, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else body_input
        f0 = self.head(padded.contiguous(memory_format=torch.channels_last)).permute(0, 2, 3, 1)
        f = f0
        for g, group in enumerate(self.body):
            shift = self.window // 2 if g % 2 else 0  # every other group attends in shifted windows
            maps: AttentionMaps | None = None
            for block in group:
                f, computed = block(f, maps, shift)
                maps = computed if self.share_attention else None
        out = spatial(self.upsample[0], spatial(self.body_tail, f) + f0)[:, :h, :w]
        if self.interp_skip:  # in float32 whatever the body's precision, autocast (training) included
            with _autocast_off(x.device):
                out = out.float() + bicubic_phases(x.float(), self.scale)
        return self._pixel_shuffle(out)
