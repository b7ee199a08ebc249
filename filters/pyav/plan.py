"""How the upscaled video is encoded: encoder, pixel format, size, options and colour tags.

libsvtav1 prints a banner on stderr unless ``SVT_LOG`` is set in the environment; the library
leaves the environment alone (``idsa-sr`` sets ``SVT_LOG=1``).
"""
from __future__ import annotations

import dataclasses
import io
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import av

from .errors import TranscodeError, message
from .hdr import hdr_options
from .probe import Colour, SourceVideo, bits, chroma

DEFAULT_CODEC = "libx264"
CODEC_DEFAULTS: dict[str, dict[str, str]] = {
    "libx264": {"crf": "18"},
    "libx265": {"crf": "20", "x265-params": "log-level=error"},
    "libsvtav1": {"crf": "28"},
    "ffv1": {"level": "3"},
}
SEGMENT_FORMATS = {"mp4": ".mp4", "mov": ".mov", "matroska": ".mkv"}  # first that takes the codec; mp4/mov keep time bases exactly


@dataclass(frozen=True)
class VideoPlan:
    """How the upscaled video is encoded: everything a worker needs, JSON-able."""

    codec: str
    pix_fmt: str
    width: int
    height: int
    options: dict[str, str]
    rgb: str  # the array format between decoder, engine and encoder: rgb24 or rgb48le
    time_base: Fraction
    rate: Fraction
    sar: Fraction | None
    colour: Colour
    segment_format: str

    @property
    def bits(self) -> int:
        """Bits per sample of the encoded video (8 for yuv420p, 10 for yuv420p10le, ...)."""
        return bits(av.VideoFormat(self.pix_fmt))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(time_base=str(self.time_base), rate=str(self.rate), sar=str(self.sar) if self.sar else None)
        return data


def _encoder(codec: str) -> av.Codec:
    try:
        encoder = av.Codec(codec, "w")
    except av.error.FFmpegError as exc:  # UnknownCodecError
        raise TranscodeError(f"unknown encoder {codec!r} ({message(exc)}); try libx264, libx265, libsvtav1 or ffv1") from None
    except ValueError:
        raise TranscodeError(f"unknown encoder {codec!r}; try libx264, libx265, libsvtav1 or ffv1") from None
    if encoder.type != "video":
        raise TranscodeError(f"{codec} is an {encoder.type} encoder, not a video one")
    return encoder


def choose_pix_fmt(encoder: av.Codec, source: SourceVideo, requested: str | None = None) -> str:
    """``requested`` if the encoder takes it; else the source's chroma and depth (nearest the encoder takes)."""
    supported = [f.name for f in encoder.video_formats or ()]
    if requested:
        if supported and requested not in supported:
            raise TranscodeError(f"{encoder.name} cannot encode pixel format {requested!r}; it takes {', '.join(supported)}")
        return requested
    depths = sorted(b for b in (8, 9, 10, 12, 14, 16) if b >= source.bits) + sorted((b for b in (8, 9, 10, 12, 14) if b < source.bits), reverse=True)
    families = ["gray", "420"] if source.chroma == "gray" else [source.chroma, "420"]
    for family in families:
        for depth in depths:
            base = "gray" if family == "gray" else f"yuv{family}p"
            name = base if depth == 8 else f"{base}{depth}le"
            if name in supported:
                return name
    return supported[0] if supported else "yuv420p"


def _merge_options(*layers: dict[str, str]) -> dict[str, str]:
    """Later layers win, except that ``*-params`` strings (k=v:k=v) are joined."""
    merged: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.items():
            merged[key] = f"{merged[key]}:{value}" if key.endswith("-params") and merged.get(key) else str(value)
    return merged


def _user_options(encoder: av.Codec, crf: int | None, preset: str | None, options: dict[str, str] | None) -> dict[str, str]:
    """The caller's encoder options as strings; one the encoder does not know is an error."""
    user = {k: str(v) for k, v in (options or {}).items()}
    if crf is not None:
        user["crf"] = str(crf)
    if preset is not None:
        user["preset"] = str(preset)
    supported = av.CodecContext.create(encoder, "w").supported_options
    known = {o.name for o in supported.generic + supported.private}
    for key in user:
        if key not in known:
            raise TranscodeError(f"{encoder.name} takes no option {key!r}")
    return user


def plan_video(source: SourceVideo, scale: int, dst_format: str, codec: str = DEFAULT_CODEC, crf: int | None = None,
               preset: str | None = None, pix_fmt: str | None = None, options: dict[str, str] | None = None) -> VideoPlan:
    """Encoder, pixel format, size and tags for the upscaled video in a ``dst_format`` container.

    The encoder is opened once against that container and against the segment containers (the
    first that takes it is used), so bad settings fail here with a one-line error.
    """
    encoder = _encoder(codec)
    out_fmt = choose_pix_fmt(encoder, source, pix_fmt)
    fmt = av.VideoFormat(out_fmt)
    width, height = source.width * scale, source.height * scale
    if chroma(fmt) in ("420", "422"):
        width -= width % 2
    if chroma(fmt) == "420":
        height -= height % 2
    user = _user_options(encoder, crf, preset, options)
    plan = VideoPlan(
        codec=codec, pix_fmt=out_fmt, width=width, height=height,
        options=_merge_options(CODEC_DEFAULTS.get(codec, {}), hdr_options(codec, source), user),
        rgb="rgb48le" if source.bits > 8 or bits(fmt) > 8 else "rgb24", time_base=source.time_base, rate=source.rate,
        sar=source.sar, colour=source.colour, segment_format="",
    )
    refused = header_error(dst_format, lambda c: add_video_stream(c, plan))
    if refused is not None:
        raise TranscodeError(f"cannot encode {codec} ({out_fmt}, {width}x{height}) into {dst_format}: {refused}")
    for name in SEGMENT_FORMATS:
        if header_error(name, lambda c: add_video_stream(c, plan)) is None:
            return dataclasses.replace(plan, segment_format=name)
    raise TranscodeError(f"no segment container ({', '.join(SEGMENT_FORMATS)}) takes {codec}")


def add_video_stream(container: av.container.OutputContainer, plan: VideoPlan) -> av.VideoStream:
    """An encoder stream in ``container`` configured from ``plan``."""
    stream = container.add_stream(plan.codec, rate=plan.rate, options=dict(plan.options))
    stream.width, stream.height, stream.pix_fmt = plan.width, plan.height, plan.pix_fmt
    stream.time_base = plan.time_base
    cc = stream.codec_context
    cc.time_base = plan.time_base
    cc.color_range, cc.colorspace = plan.colour.range, plan.colour.matrix
    cc.color_primaries, cc.color_trc = plan.colour.primaries, plan.colour.transfer
    if plan.sar:
        cc.sample_aspect_ratio = plan.sar
    return stream


def header_error(format_name: str, add: Callable[[av.container.OutputContainer], Any]) -> str | None:
    """Why a ``format_name`` container refuses the stream that ``add`` creates (opening its encoder), or None."""
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format=format_name) as container:
            add(container)
            container.start_encoding()
    except (av.error.FFmpegError, ValueError, TypeError) as exc:
        return message(exc)
    return None


def output_format(dst: str | os.PathLike) -> str:
    """The container format FFmpeg picks for ``dst``'s extension."""

    class Named(io.BytesIO):
        name = str(dst)

    try:
        with av.open(Named(), "w") as container:
            return container.format.name
    except ValueError:
        raise TranscodeError(f"{dst}: unknown output container for extension {Path(dst).suffix!r} (use .mkv, .mp4, .mov, ...)") from None
