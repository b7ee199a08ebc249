"""PyAV adapter: super-resolve the video of a media file and keep everything else exact.

``transcode(src, dst)`` decodes, upscales and encodes as a pipeline: a decoding thread feeds the
engine (which runs its own reader and inference threads), an encoding thread writes the results;
bounded queues between them keep memory flat in the video's length.

What is kept, and how:

* timing: one output frame per selected source frame, each with its source pts (VFR stays VFR),
  the source time base (Matroska can only store milliseconds) and frame rate; other streams keep
  their timestamps, so audio stays in sync;
* colour: 8-bit sources go through rgb24, deeper ones through rgb48 and come out at the same depth
  and chroma subsampling when the encoder takes them (else 4:2:0 at the nearest depth); range,
  matrix, primaries and transfer are tagged as in the source; an untagged matrix is read as
  BT.601 below 720 lines and BT.709 from 720 up, and written explicitly, because the upscaled size
  would change a player's guess; HDR10 mastering-display and content-light metadata are written
  by libx265 and libsvtav1 (libx264 and ffv1 cannot carry them: a notice says so); SAR and the
  display matrix (rotation, flips) are copied;
* odd output sizes with subsampled chroma (e.g. 4:2:0 at x3): the last output column/row is
  cropped, one pixel, never an encoder error;
* other streams (audio, subtitles, attachments, data, cover art): remuxed packet for packet when
  the output container takes them; audio it does not take is re-encoded to AAC (else Opus), other
  streams it does not take are dropped, each with a one-line notice; stream tags (language,
  title), dispositions, chapters and container tags are copied.

The video is encoded in segments: every ``segment_frames`` frames a fresh encoder starts with a
keyframe (closed GOP) into its own file in a work folder beside the target. The segments are then
concatenated packet for packet with recomputed decode timestamps and muxed once with the other
streams into a temporary file that replaces the target on success. With ``resume=True`` the work
folder and its JSON state survive an interruption and the next run continues after the last
complete segment, giving the same output as an uninterrupted run. :func:`plan_transcode`,
:func:`encode_segments`, :class:`WorkDir` and :func:`finish_transcode` are the reusable pieces: a
distributed runner (:mod:`idsa_plugin.filters.ray_batch`) plans on one host, encodes segments on
workers and muxes once.
"""
from __future__ import annotations

import bisect
import contextlib
import dataclasses
import errno
import hashlib
import heapq
import io
import itertools
import json
import logging
import math
import os
import queue
import shutil
import struct
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import av
import numpy as np
from av.sidedata.sidedata import Type as SideData
from av.stream import Disposition
from av.video.reformatter import Colorspace

from idsa_plugin.atomic import atomic_path, check_target
from idsa_plugin.plugins import get_host

if TYPE_CHECKING:  # torch loads only when a transcode runs
    from idsa_plugin.engine import Engine

log = logging.getLogger("idsa_plugin")

DEFAULT_CODEC = "libx264"
DEFAULT_SEGMENT_FRAMES = 240
CODEC_DEFAULTS: dict[str, dict[str, str]] = {
    "libx264": {"crf": "18"},
    "libx265": {"crf": "20", "x265-params": "log-level=error"},
    "libsvtav1": {"crf": "28"},
    "ffv1": {"level": "3"},
}
HDR_CODECS = ("libx265", "libsvtav1")
SEGMENT_FORMATS = {"mp4": ".mp4", "mov": ".mov", "matroska": ".mkv"}  # first that takes the codec; mp4/mov keep time bases exactly
QUEUE_FRAMES = 4
READ_PAST = 10  # seconds demuxed past the end of a selection for interleaved streams
STATE_VERSION = 1
_UNSPECIFIED_MATRIX, _UNSPECIFIED_RANGE, _MPEG_RANGE = 2, 0, 1
_BT709, _SMPTE170M = 1, 6
# AVColorSpace -> swscale matrix for the RGB -> YUV conversion.
_SWS_MATRIX = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
               7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}
_STALE_TAGS = {"duration", "encoder", "bps", "number_of_frames", "number_of_bytes", "major_brand", "minor_version", "compatible_brands"}
_END = object()


class TranscodeError(RuntimeError):
    """A problem with the input, the output or the settings, said in one line."""


# ---- source ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Colour:
    """AVColorRange / AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic values."""

    range: int
    matrix: int
    primaries: int
    transfer: int


@dataclass(frozen=True)
class SourceVideo:
    """What the transcode needs to know about the source's video stream."""

    index: int
    width: int
    height: int
    bits: int
    chroma: str  # "420", "422", "444", "gray"
    time_base: Fraction
    rate: Fraction
    sar: Fraction | None
    colour: Colour
    display_matrix: tuple[int, ...] | None
    mastering: bytes | None  # AVMasteringDisplayMetadata
    light: bytes | None  # AVContentLightMetadata


def _message(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "strerror", None) or exc).split())


def open_input(src: str | os.PathLike) -> av.container.InputContainer:
    """Open a media file, or raise a one-line :class:`TranscodeError`."""
    path = Path(src)
    if not path.exists():
        raise TranscodeError(f"{path}: no such file")
    if not path.is_file():
        raise TranscodeError(f"{path}: not a file")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise TranscodeError(f"{path}: not a media file, or damaged beyond reading ({_message(exc)})") from None


def _chroma(fmt: av.VideoFormat) -> str:
    if len(fmt.components) < 3:
        return "gray"
    if fmt.is_rgb:
        return "444"
    probe = av.VideoFormat(fmt.name, 64, 64)
    return {(64, 64): "444", (32, 64): "422"}.get((probe.chroma_width(), probe.chroma_height()), "420")


def _first_frames(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.VideoFrame]:
    """Decoded frames, skipping packets that fail (the transcode counts those)."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.FFmpegError:
            continue


def probe(src: str | os.PathLike) -> SourceVideo:
    """Read the video stream's properties and its first frame's side data (HDR, rotation)."""
    with open_input(src) as container:
        stream = next((s for s in container.streams.video if not s.disposition & Disposition.attached_pic), None)
        if stream is None:
            raise TranscodeError(f"{src}: no video stream")
        first = next(_first_frames(container, stream), None)
        if first is None:
            raise TranscodeError(f"{src}: the video stream has no decodable frame")
        fmt = first.format
        range_ = {"yuvj420p": 2, "yuvj422p": 2, "yuvj444p": 2}.get(fmt.name, first.color_range)
        matrix = first.colorspace
        if matrix == _UNSPECIFIED_MATRIX and not fmt.is_rgb:
            matrix = _BT709 if first.height >= 720 else _SMPTE170M
        side = first.side_data
        matrix_data = side.get(SideData.DISPLAYMATRIX)
        sar = stream.codec_context.sample_aspect_ratio
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        return SourceVideo(
            index=stream.index, width=first.width, height=first.height,
            bits=max(c.bits for c in fmt.components), chroma=_chroma(fmt),
            time_base=Fraction(stream.time_base), rate=Fraction(rate), sar=Fraction(sar) if sar else None,
            colour=Colour(range_ or _MPEG_RANGE, matrix, first.color_primaries, first.color_trc),
            display_matrix=struct.unpack("<9i", bytes(matrix_data)) if matrix_data is not None else None,
            mastering=bytes(side[SideData.MASTERING_DISPLAY_METADATA]) if SideData.MASTERING_DISPLAY_METADATA in side else None,
            light=bytes(side[SideData.CONTENT_LIGHT_LEVEL]) if SideData.CONTENT_LIGHT_LEVEL in side else None,
        )


def _declared_end(container: av.container.InputContainer, stream: av.VideoStream) -> Fraction | None:
    """The end time the file declares for its video (stream duration, or Matroska's DURATION tag)."""
    if stream.duration:
        return (stream.start_time or 0) * Fraction(stream.time_base) + stream.duration * Fraction(stream.time_base)
    tag = stream.metadata.get("DURATION")
    if tag:
        h, m, s = tag.split(":")
        return Fraction(int(h) * 3600 + int(m) * 60) + Fraction(s)
    return None


@dataclass(frozen=True)
class FrameIndex:
    """Presentation timestamps of every video frame (sorted) and where the last one ends, in the stream's time base."""

    pts: np.ndarray
    end: int

    def select(self, time_base: Fraction, start: float | None = None, duration: float | None = None,
               frames: int | None = None) -> tuple[int, int]:
        """The slice ``[first, stop)`` that ``start``/``duration`` (seconds from the first frame) or ``frames`` select."""
        t0 = int(self.pts[0]) * time_base + Fraction(start or 0)
        first = int(np.searchsorted(self.pts, math.ceil(t0 / time_base)))
        stop = len(self.pts)
        if frames is not None:
            stop = min(stop, first + int(frames))
        elif duration is not None:
            stop = int(np.searchsorted(self.pts, math.ceil((t0 + Fraction(duration)) / time_base)))
        if stop <= first:
            raise TranscodeError("the selection (--start/--duration/--frames) holds no video frame")
        return first, stop

    def end_of(self, stop: int) -> int:
        """Where the frames before ``stop`` end: the next frame's pts, or the end of the last."""
        return int(self.pts[stop]) if stop < len(self.pts) else self.end


def index_frames(src: str | os.PathLike, source: SourceVideo, on_error: str = "fail") -> FrameIndex:
    """Index the video frames from a demux-only pass (no decoding).

    A file that declares more frames (or a later end) than it holds is truncated: an error with
    ``on_error="fail"``, a notice with ``"skip"``.
    """
    with open_input(src) as container:
        stream = container.streams[source.index]
        pts: list[int] = []
        end = None
        try:
            for packet in container.demux(stream):
                if not packet.size or packet.is_discard:
                    continue
                if packet.pts is None:
                    raise TranscodeError(f"{src}: video packets without timestamps (a raw stream?): remux it into a container first")
                pts.append(packet.pts)
                if packet.duration:
                    end = max(end or 0, packet.pts + packet.duration)
        except av.error.FFmpegError as exc:
            _bad_input(src, f"unreadable after {len(pts)} frames ({_message(exc)})", on_error)
        if not pts:
            raise TranscodeError(f"{src}: the video stream holds no frames")
        index = np.unique(np.asarray(pts, dtype=np.int64))
        last, tb = int(index[-1]), source.time_base
        step = int(round(1 / (source.rate * tb))) or 1
        seen = max(end or 0, last + step)  # packet durations: exact in Matroska, dts deltas in MP4
        declared = _declared_end(container, stream)
        if stream.frames > len(index) or (declared is not None and (seen + 2 * step) * tb + Fraction(1, 20) < declared):
            _bad_input(src, f"truncated: video ends at {float(seen * tb):.3f} s of {float(declared or seen * tb):.3f} s "
                            f"({len(index)} of {stream.frames or '?'} frames)", on_error)
        elif declared is not None and declared > last * tb:
            seen = math.ceil(declared / tb)
        return FrameIndex(index, seen)


def _bad_input(src: str | os.PathLike, problem: str, on_error: str) -> None:
    if on_error == "fail":
        raise TranscodeError(f"{src}: corrupt or truncated video: {problem} (--on-error skip transcodes what decodes)")
    log.warning("%s: %s; transcoding what decodes", src, problem)


# ---- video encoding plan -----------------------------------------------------------------------
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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(time_base=str(self.time_base), rate=str(self.rate), sar=str(self.sar) if self.sar else None)
        return data


def _encoder(codec: str) -> av.Codec:
    try:
        encoder = av.Codec(codec, "w")
    except av.error.FFmpegError as exc:  # UnknownCodecError
        raise TranscodeError(f"unknown encoder {codec!r} ({_message(exc)}); try libx264, libx265, libsvtav1 or ffv1") from None
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
        for bits in depths:
            base = "gray" if family == "gray" else f"yuv{family}p"
            name = base if bits == 8 else f"{base}{bits}le"
            if name in supported:
                return name
    return supported[0] if supported else "yuv420p"


def _hdr_options(codec: str, source: SourceVideo) -> dict[str, str]:
    """Encoder options that write the source's HDR10 static metadata, where the encoder can."""
    if not (source.mastering or source.light):
        return {}
    if codec not in HDR_CODECS:
        log.warning("%s cannot write HDR10 mastering-display/content-light metadata: not carried (use libx265 or libsvtav1)", codec)
        return {}
    params = []
    v = struct.unpack("<22i", source.mastering[:88]) if source.mastering else ()
    if v and v[20] and v[21]:  # has_primaries, has_luminance
        r = [Fraction(v[2 * i], v[2 * i + 1] or 1) for i in range(10)]  # R, G, B, white point (x, y); min, max luminance
        if codec == "libx265":
            xy = [round(c * 50000) for c in r[:8]]
            params.append(f"master-display=G({xy[2]},{xy[3]})B({xy[4]},{xy[5]})R({xy[0]},{xy[1]})WP({xy[6]},{xy[7]})"
                          f"L({round(r[9] * 10000)},{round(r[8] * 10000)})")
        else:
            f = [f"{float(c):.4f}" for c in r[:8]]
            params.append(f"mastering-display=G({f[2]},{f[3]})B({f[4]},{f[5]})R({f[0]},{f[1]})WP({f[6]},{f[7]})"
                          f"L({float(r[9]):.4f},{float(r[8]):.4f})")
    if source.light:
        cll, fall = struct.unpack("<2I", source.light[:8])
        params.append(f"max-cll={cll},{fall}" if codec == "libx265" else f"content-light={cll},{fall}")
    key = "x265-params" if codec == "libx265" else "svtav1-params"
    return {key: ":".join(params)}


def _merge_options(*layers: dict[str, str]) -> dict[str, str]:
    """Later layers win, except that ``*-params`` strings (k=v:k=v) are joined."""
    merged: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.items():
            merged[key] = f"{merged[key]}:{value}" if key.endswith("-params") and merged.get(key) else str(value)
    return merged


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
    if _chroma(fmt) in ("420", "422"):
        width -= width % 2
    if _chroma(fmt) == "420":
        height -= height % 2
    user = {k: str(v) for k, v in (options or {}).items()}
    if crf is not None:
        user["crf"] = str(crf)
    if preset is not None:
        user["preset"] = str(preset)
    if codec == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner on stderr unless told otherwise
    supported = av.CodecContext.create(encoder, "w").supported_options
    known = {o.name for o in supported.generic + supported.private}
    for key in user:
        if key not in known:
            raise TranscodeError(f"{codec} takes no option {key!r}")
    bits = max(c.bits for c in fmt.components)
    plan = VideoPlan(
        codec=codec, pix_fmt=out_fmt, width=width, height=height,
        options=_merge_options(CODEC_DEFAULTS.get(codec, {}), _hdr_options(codec, source), user),
        rgb="rgb48le" if source.bits > 8 or bits > 8 else "rgb24", time_base=source.time_base, rate=source.rate,
        sar=source.sar, colour=source.colour, segment_format="",
    )
    refused = _header_error(dst_format, lambda c: add_video_stream(c, plan))
    if refused is not None:
        raise TranscodeError(f"cannot encode {codec} ({out_fmt}, {width}x{height}) into {dst_format}: {refused}")
    for name in SEGMENT_FORMATS:
        if _header_error(name, lambda c: add_video_stream(c, plan)) is None:
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


def _header_error(format_name: str, add: Callable[[av.container.OutputContainer], Any]) -> str | None:
    """Why a ``format_name`` container refuses the stream that ``add`` creates (opening its encoder), or None."""
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format=format_name) as container:
            add(container)
            container.start_encoding()
    except (av.error.FFmpegError, ValueError, TypeError) as exc:
        return _message(exc)
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


# ---- segments ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """Frames with ``start_pts <= pts < end_pts``, encoded into ``file``."""

    index: int
    start_pts: int
    end_pts: int
    frames: int
    file: str


@dataclass
class SegmentResult:
    """A finished segment: its file (None when no frame of it decoded), frames written, decode errors."""

    index: int
    file: str | None
    frames: int
    errors: int = 0


def plan_segments(pts: np.ndarray, segment_frames: int, end_pts: int, plan: VideoPlan) -> list[Segment]:
    """Cut the selected frames (sorted ``pts``) into runs of ``segment_frames``; ``end_pts`` bounds the last."""
    size = max(1, int(segment_frames))
    starts = list(range(0, len(pts), size))
    suffix = SEGMENT_FORMATS[plan.segment_format]
    return [Segment(k, int(pts[i]), int(pts[i + size]) if i + size < len(pts) else end_pts, min(size, len(pts) - i),
                    f"seg-{k:06d}{suffix}") for k, i in enumerate(starts)]


class SegmentWriter:
    """Encodes the upscaled frames of one segment into its own file (keyframe first, closed GOP).

    The file is written as ``NAME.part`` and renamed when complete, so a file without the suffix
    is always whole.
    """

    def __init__(self, path: Path, plan: VideoPlan) -> None:
        self.path, self.plan = path, plan
        self.part = path.with_name(path.name + ".part")
        self.container = av.open(str(self.part), "w", format=plan.segment_format)
        self.stream = add_video_stream(self.container, plan)
        self.frames = 0

    def write(self, image: np.ndarray, pts: int) -> None:
        plan = self.plan
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:plan.height, :plan.width]), format=plan.rgb)
        frame = frame.reformat(format=plan.pix_fmt, dst_colorspace=_SWS_MATRIX.get(plan.colour.matrix),
                               dst_color_range=plan.colour.range)
        frame.colorspace, frame.color_range = plan.colour.matrix, plan.colour.range
        frame.color_primaries, frame.color_trc = plan.colour.primaries, plan.colour.transfer
        frame.pts, frame.time_base = pts, plan.time_base
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()
        os.replace(self.part, self.path)

    def abort(self) -> None:
        try:
            self.container.close()
        except (av.error.FFmpegError, OSError):
            pass
        self.part.unlink(missing_ok=True)


class _Stage(threading.Thread):
    """A pipeline thread that keeps the exception that ended it."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the pipeline's caller
            self.error = exc


class _Cancelled(Exception):
    pass


def _put(q: queue.Queue, item: Any, stop: threading.Event, peer: _Stage | None = None) -> None:
    while True:
        if stop.is_set():
            raise _Cancelled
        if peer is not None and peer.error is not None:
            raise peer.error
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event, peer: _Stage | None = None) -> Any:
    while True:
        if stop.is_set():
            raise _Cancelled
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if peer is not None and peer.error is not None:
                raise peer.error from None


class _Errors:
    """Decode errors counted per segment; the first one raises under ``on_error="fail"``."""

    def __init__(self, src: str | os.PathLike, segments: Sequence[Segment], time_base: Fraction, on_error: str) -> None:
        self.src, self.time_base, self.on_error = src, time_base, on_error
        self.starts = [s.start_pts for s in segments]
        self.indices = [s.index for s in segments]
        self.counts: dict[int, int] = {}
        self.lock = threading.Lock()

    def add(self, pts: int | None, problem: str) -> None:
        where = f" near {float(pts * self.time_base):.3f} s" if pts is not None else ""
        if self.on_error == "fail":
            raise TranscodeError(f"{self.src}: corrupt or truncated video{where}: {problem} (--on-error skip drops bad frames)")
        log.warning("%s: skipped a bad frame%s: %s", self.src, where, problem)
        slot = self.indices[max(0, bisect.bisect_right(self.starts, pts if pts is not None else 0) - 1)]
        with self.lock:
            self.counts[slot] = self.counts.get(slot, 0) + 1

    def pop(self, index: int) -> int:
        with self.lock:
            return self.counts.pop(index, 0)


def _seek_targets(first: int, index_start: int, time_base: Fraction) -> Iterator[int | None]:
    """Where to seek so that decoding reaches ``first`` from a keyframe: there, then earlier, then the start (None)."""
    if first > index_start:
        for back in (0, 2, 20):
            target = first - int(back / time_base)
            if target <= index_start:
                break
            yield target
    yield None


def _good_frames(container: av.container.InputContainer, stream: av.VideoStream, first: int, errors: _Errors) -> Iterator[av.VideoFrame]:
    """Frames from the current position with strictly increasing pts; bad ones at or after ``first`` are counted."""
    last: int | None = None
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            if packet.pts is None or packet.pts >= first:
                errors.add(packet.pts, _message(exc))
            continue
        for frame in frames:
            pts = frame.pts
            if pts is None or frame.is_corrupt or (last is not None and pts <= last):
                if pts is None or pts >= first:
                    errors.add(pts, "corrupt frame" if frame.is_corrupt else "missing or out-of-order timestamp")
                continue
            last = pts
            yield frame


def decode_frames(container: av.container.InputContainer, source: SourceVideo, first: int, end: int,
                  errors: _Errors, index_start: int) -> Iterator[av.VideoFrame]:
    """Decoded frames with ``first <= pts < end`` in order, starting from a keyframe at or before ``first``."""
    stream = container.streams[source.index]
    stream.thread_type = "AUTO"
    for target in _seek_targets(first, index_start, source.time_base):
        if target is not None or first > index_start:
            try:
                container.seek(target if target is not None else index_start, stream=stream, backward=True)
            except av.error.FFmpegError:
                if target is None:
                    raise
                continue
        frames = _good_frames(container, stream, first, errors)
        head = next(frames, None)
        if head is not None and target is not None and head.pts > first:
            continue  # the seek landed after ``first`` (index by dts, open GOP): seek earlier
        for frame in itertools.chain(() if head is None else (head,), frames):
            if frame.pts >= end:
                return
            if frame.pts >= first:
                yield frame
        return


def encode_segments(src: str | os.PathLike, segments: Sequence[Segment], source: SourceVideo, plan: VideoPlan,
                    engine: Engine, work_dir: str | os.PathLike, index_start: int, on_error: str = "fail",
                    on_segment: Callable[[SegmentResult], None] | None = None,
                    on_frame: Callable[[], None] | None = None) -> list[SegmentResult]:
    """Decode, upscale and encode consecutive ``segments`` of ``src`` into their files in ``work_dir``.

    Decoding and encoding run in their own threads around ``engine.stream`` with bounded queues.
    ``on_segment`` is called (from the encoding thread) as each segment file is complete;
    ``index_start`` is the first pts of the whole video (seeking before it is pointless).
    """
    from idsa_plugin.engine import Frame

    if not segments:
        return []
    work = Path(work_dir)
    first, end = segments[0].start_pts, segments[-1].end_pts
    errors = _Errors(src, segments, source.time_base, on_error)
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
    upscaled: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
    results: list[SegmentResult] = []

    def decode() -> None:
        with open_input(src) as container:
            for frame in decode_frames(container, source, first, end, errors, index_start):
                if frame.colorspace == _UNSPECIFIED_MATRIX and source.colour.matrix != _UNSPECIFIED_MATRIX:
                    frame.colorspace = source.colour.matrix
                if frame.color_range == _UNSPECIFIED_RANGE:
                    frame.color_range = source.colour.range
                _put(decoded, Frame(frame.to_ndarray(format=plan.rgb), frame.pts), stop)
        _put(decoded, _END, stop)

    def finish(writer: SegmentWriter | None, upto: int) -> None:
        """Close the open segment and record every segment before ``upto`` as done."""
        while len(results) < upto:
            segment = segments[len(results)]
            frames = 0
            if writer is not None and writer.path.name == segment.file:
                writer.close()
                frames = writer.frames
            result = SegmentResult(segment.index, segment.file if frames else None, frames, errors.pop(segment.index))
            results.append(result)
            if on_segment is not None:
                on_segment(result)

    def encode() -> None:
        starts = [s.start_pts for s in segments]
        writer: SegmentWriter | None = None
        try:
            while (item := _get(upscaled, stop)) is not _END:
                k = bisect.bisect_right(starts, item.meta) - 1
                if writer is None or writer.path.name != segments[k].file:
                    finish(writer, k)
                    writer = SegmentWriter(work / segments[k].file, plan)
                writer.write(item.image, item.meta)
                if on_frame is not None:
                    on_frame()
            finish(writer, len(segments))
        except BaseException:
            if writer is not None:
                writer.abort()
            raise

    def frames_in() -> Iterator[Frame]:
        while (item := _get(decoded, stop, decoder)) is not _END:
            yield item

    decoder, encoder = _Stage("idsa-decode", decode), _Stage("idsa-encode", encode)
    decoder.start()
    encoder.start()
    try:
        with contextlib.closing(engine.stream(frames_in())) as upscaled_frames:
            for out in upscaled_frames:
                _put(upscaled, out, stop, encoder)
        _put(upscaled, _END, stop, encoder)
        while encoder.is_alive():
            encoder.join(0.1)
        for stage in (decoder, encoder):
            if stage.error is not None and not isinstance(stage.error, _Cancelled):
                raise stage.error
    finally:
        stop.set()
        for stage in (decoder, encoder):
            stage.join(timeout=10)
    return results


# ---- concatenation and muxing ------------------------------------------------------------------
def decode_timestamps(pts: Sequence[int], end: int) -> np.ndarray:
    """Strictly increasing dts for packets with these (unique) pts in decode order; ``end`` is where the last frame ends.

    With D the largest number of places a packet comes before its presentation rank, the g-th
    packet gets the (g - D)-th presentation timestamp, which never exceeds its own pts; the first
    D mirror the next ones below the first pts. Works across segment boundaries, CFR or VFR. The
    first dts is lowered when needed so that a dts-based track length (MP4: last dts + its
    duration - first dts) covers the whole presentation.
    """
    pts = np.asarray(pts, dtype=np.int64)
    order = np.sort(pts)
    rank = np.searchsorted(order, pts)
    g = np.arange(len(pts))
    delay = int(max(0, (g - rank).max(initial=0)))
    dts = np.where(g >= delay, order[np.maximum(g - delay, 0)], 2 * order[0] - order[np.clip(delay - g, 0, len(pts) - 1)])
    last_duration = (order[rank[-1] + 1] if rank[-1] + 1 < len(order) else end) - pts[-1]
    dts[0] = min(dts[0], dts[-1] + last_duration - (end - order[0]))
    return dts


def video_packets(files: Sequence[Path], stream: av.VideoStream, end: Fraction) -> Iterator[av.Packet]:
    """The segments' packets in order for ``stream``, with fresh dts, each frame lasting until the
    next one and the last until ``end`` (seconds)."""
    pts: list[int] = []
    extradata = None
    for path in files:
        with av.open(str(path)) as seg:
            video = seg.streams.video[0]
            time_base = Fraction(video.time_base)
            if extradata is not None and video.codec_context.extradata != extradata:
                raise TranscodeError(f"{path.name} was encoded with other settings than the segments before it; delete the work folder")
            extradata = video.codec_context.extradata
            pts.extend(p.pts for p in seg.demux(video) if p.size)
    end_pts = round(end / time_base)
    dts = decode_timestamps(pts, end_pts)
    order = np.sort(np.asarray(pts, dtype=np.int64))
    durations = np.diff(order, append=end_pts)
    g = 0
    for path in files:
        with av.open(str(path)) as seg:
            for packet in seg.demux(seg.streams.video[0]):
                if packet.size:
                    packet.dts, packet.duration = int(dts[g]), int(durations[np.searchsorted(order, packet.pts)])
                    packet.stream = stream
                    g += 1
                    yield packet


def _tags(metadata: dict[str, str]) -> dict[str, str]:
    """Metadata without the tags that describe the old file (durations, statistics, encoder)."""
    return {k: v for k, v in metadata.items()
            if k.lower().split("-")[0] not in _STALE_TAGS and not k.lower().startswith("_statistics")}


@dataclass
class MuxReport:
    """What happened to the other streams."""

    copied: list[str] = field(default_factory=list)
    reencoded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _describe(stream: av.stream.Stream) -> str:
    if stream.type == "attachment":
        return f"#{stream.index} attachment {stream.metadata.get('filename', '')}".rstrip()
    lang = stream.metadata.get("language")
    return f"#{stream.index} {stream.type} {stream.codec_context.codec.canonical_name}" + (f" ({lang})" if lang else "")


class _AudioReencoder:
    """Decodes one audio stream and encodes it with an encoder the output container takes."""

    def __init__(self, source: av.AudioStream, target: av.AudioStream) -> None:
        self.source, self.target = source, target

    def packets(self, packet: av.Packet | None) -> list[av.Packet]:
        """Encoded packets for one source packet (None: flush both codecs)."""
        out: list[av.Packet] = []
        for frame in self.source.decode(packet):
            out.extend(self.target.encode(frame))
        if packet is None:
            out.extend(self.target.encode(None))
        return out


def _add_audio_encoder(container: av.container.OutputContainer, source: av.AudioStream, codec: str) -> av.AudioStream:
    rate = source.codec_context.sample_rate
    if codec in ("libopus", "opus"):
        rate = min((r for r in (8000, 12000, 16000, 24000, 48000) if r >= rate), default=48000)
    stream = container.add_stream(codec, rate=rate)
    stream.layout = source.codec_context.layout
    return stream


def _plan_streams(inp: av.container.InputContainer, out: av.container.OutputContainer, video_index: int,
                  report: MuxReport) -> dict[int, tuple[av.stream.Stream, _AudioReencoder | None]]:
    """Output streams for every stream but the upscaled video: copied, re-encoded audio, or dropped."""
    mapping: dict[int, tuple[av.stream.Stream, _AudioReencoder | None]] = {}
    fmt = out.format.name
    for stream in inp.streams:
        if stream.index == video_index:
            continue
        what = _describe(stream)
        if _header_error(fmt, lambda c: c.add_stream_from_template(stream, opaque=True)) is None:
            target = out.add_stream_from_template(stream, opaque=True)
            report.copied.append(what)
            reencoder = None
        elif stream.type == "audio":
            codec = next((c for c in ("aac", "libopus", "opus") if c in av.codecs_available
                          and _header_error(fmt, lambda o: _add_audio_encoder(o, stream, c)) is None), None)
            if codec is None:
                report.dropped.append(what)
                log.warning("%s: %s takes neither it nor AAC/Opus: dropped", what, fmt)
                continue
            target = _add_audio_encoder(out, stream, codec)
            reencoder = _AudioReencoder(stream, target)
            report.reencoded.append(what)
            log.warning("%s: %s cannot store it: re-encoded to %s", what, fmt, codec)
        else:
            report.dropped.append(what)
            log.warning("%s: %s cannot store it: dropped (.mkv keeps it)", what, fmt)
            continue
        target.metadata.update(_tags(stream.metadata))
        target.disposition = stream.disposition
        mapping[stream.index] = (target, reencoder)
    return mapping


def _other_packets(inp: av.container.InputContainer, mapping: dict[int, tuple[av.stream.Stream, _AudioReencoder | None]],
                   window: tuple[Fraction | None, Fraction | None]) -> Iterator[av.Packet]:
    """The other streams' packets that start inside ``window`` (seconds, None: open), copied or re-encoded."""
    streams = [inp.streams[i] for i in mapping if inp.streams[i].type != "attachment"]
    if not streams:
        return
    t0, t1 = window
    if t0 is not None:
        inp.seek(max(0, int((t0 - 1) * av.time_base)), backward=True)
    for packet in inp.demux(*streams):
        if not packet.size:
            continue
        when = packet.pts if packet.pts is not None else packet.dts
        t = when * Fraction(packet.time_base) if when is not None else None
        if t is not None and t1 is not None and t >= t1 + READ_PAST:
            break
        if t is not None and ((t0 is not None and t < t0) or (t1 is not None and t >= t1)):
            continue
        target, reencoder = mapping[packet.stream.index]
        if reencoder is None:
            packet.stream = target
            yield packet
        else:
            yield from reencoder.packets(packet)
    for _, reencoder in mapping.values():
        if reencoder is not None:
            yield from reencoder.packets(None)


def _when(packet: av.Packet) -> float:
    ts = packet.dts if packet.dts is not None else packet.pts
    return float(ts * packet.time_base) if ts is not None else 0.0


def mux(src: str | os.PathLike, dst: str | os.PathLike, files: Sequence[Path], source: SourceVideo, end: Fraction,
        window: tuple[Fraction | None, Fraction | None] = (None, None)) -> MuxReport:
    """Write ``dst``: the segments' video (its last frame ending at ``end`` seconds) plus every other
    stream of ``src`` that starts inside ``window`` (seconds, None: open)."""
    report = MuxReport()
    with open_input(src) as inp, av.open(str(dst), "w") as out:
        out.metadata.update(_tags(inp.metadata))
        with av.open(str(files[0])) as first:
            video = out.add_stream_from_template(first.streams.video[0], opaque=True)
        video.time_base = source.time_base
        src_video = inp.streams[source.index]
        video.metadata.update(_tags(src_video.metadata))
        video.disposition = src_video.disposition
        if video.codec_context.name == "hevc" and out.format.name in ("mp4", "mov"):
            video.codec_tag = "hvc1"
        if source.display_matrix is not None:
            video.set_display_matrix(source.display_matrix)
        mapping = _plan_streams(inp, out, source.index, report)
        t0, t1 = window
        chapters = [c for c in inp.chapters()
                    if (t1 is None or c["start"] * Fraction(c["time_base"]) < t1) and (t0 is None or c["end"] * Fraction(c["time_base"]) > t0)]
        if chapters:
            out.set_chapters(chapters)
        for packet in heapq.merge(video_packets(files, video, end), _other_packets(inp, mapping, window), key=_when):
            out.mux(packet)
    return report


# ---- work folder, job and summary --------------------------------------------------------------
class WorkDir:
    """Segment files and the resume state of one transcode, in a folder beside the target.

    Resumable folders are named ``.NAME.resume``; others are temporary and always removed.
    """

    def __init__(self, target: Path, fingerprint: str, resume: bool) -> None:
        self.fingerprint, self.resume = fingerprint, resume
        if resume:
            self.path = target.parent / f".{target.name}.resume"
            self.path.mkdir(parents=True, exist_ok=True)
        else:
            self.path = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".segments", dir=target.parent))
        self.state_file = self.path / "state.json"
        self.done: dict[int, SegmentResult] = {}
        if resume and self.state_file.exists():
            state = json.loads(self.state_file.read_text())
            if state.get("version") == STATE_VERSION and state.get("fingerprint") == fingerprint:
                self.done = {r["index"]: SegmentResult(**r) for r in state["segments"]
                             if r["file"] is None or (self.path / r["file"]).is_file()}
            else:
                log.warning("%s: the resume state is for other settings or another source: starting over", target)
                shutil.rmtree(self.path)
                self.path.mkdir()

    def record(self, result: SegmentResult) -> None:
        """Note a finished segment (atomically rewrites the state file)."""
        self.done[result.index] = result
        if not self.resume:
            return
        state = {"version": STATE_VERSION, "fingerprint": self.fingerprint,
                 "segments": [asdict(r) for _, r in sorted(self.done.items())]}
        part = self.state_file.with_suffix(".part")
        part.write_text(json.dumps(state, indent=1))
        os.replace(part, self.state_file)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class TranscodeJob:
    """What plugins see in ``job_started``/``batch_done``/``job_finished``."""

    source: str
    output: str
    frames: int
    settings: dict[str, Any]


@dataclass
class TranscodeSummary:
    """Counts and timings of a transcode (``error`` set when it failed)."""

    source: str
    output: str
    frames: int = 0
    resumed_frames: int = 0
    decode_errors: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    bytes: int = 0
    width: int = 0
    height: int = 0
    codec: str = ""
    pix_fmt: str = ""
    streams: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        done = f"{self.frames} frames" + (f" ({self.resumed_frames} from a resumed run)" if self.resumed_frames else "")
        kept = ", ".join(f"{len(v)} {k}" for k, v in self.streams.items() if v)
        return (f"{done} in {self.seconds:.1f} s ({self.fps:.2f} fps) -> {self.output} "
                f"({self.width}x{self.height} {self.codec} {self.pix_fmt}, {self.bytes / 1e6:.2f} MB)"
                + (f"; other streams: {kept}" if kept else "") + (f"; {self.decode_errors} decode errors" if self.decode_errors else ""))


def fingerprint(src: Path, settings: dict[str, Any], engine: Engine) -> str:
    """Identifies what a resume state belongs to: the source file, the settings and the model."""
    info = getattr(engine.model, "idsa_info", None)
    weights = Path(info.weights) if info is not None and info.weights else None
    model = {"name": info.name if info else type(engine.model).__name__, "weights": str(weights),
             "weights_stat": [weights.stat().st_size, weights.stat().st_mtime_ns] if weights and weights.exists() else None,
             "scale": engine.scale, "device": engine.device.type, "dtype": str(engine.dtype), "batch": engine.batch,
             "tile": engine.tile, "overlap": engine.overlap,
             "filters": [getattr(f, "__qualname__", repr(f)) for f in engine.pre + engine.post]}
    stat = src.stat()
    identity = [str(src.resolve()), stat.st_size, stat.st_mtime_ns, settings, model]
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _check_paths(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool) -> tuple[Path, Path]:
    src_path, dst_path = Path(src), Path(dst)
    if dst_path.resolve() == src_path.resolve() or (dst_path.exists() and src_path.exists() and os.path.samefile(src_path, dst_path)):
        raise TranscodeError(f"{dst_path}: the output is the input; choose another file")
    if dst_path.is_dir():
        raise TranscodeError(f"{dst_path}: is a folder; give an output file")
    check_target(dst_path, overwrite)
    return src_path, dst_path


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


@dataclass(frozen=True)
class TranscodePlan:
    """Everything decided before a frame is decoded: paths, selection, encoding and segments."""

    src: Path
    dst: Path
    source: SourceVideo
    index_start: int  # the first pts of the whole video
    window: tuple[Fraction | None, Fraction | None]  # the selection in seconds, for the other streams (None: open)
    video: VideoPlan
    segments: list[Segment]
    job: TranscodeJob

    def summary(self) -> TranscodeSummary:
        return TranscodeSummary(str(self.src), str(self.dst), width=self.video.width, height=self.video.height,
                                codec=self.video.codec, pix_fmt=self.video.pix_fmt)


def plan_transcode(src: str | os.PathLike, dst: str | os.PathLike, scale: int = 2, model: Any = "idsa-net-s", *,
                   codec: str = DEFAULT_CODEC, crf: int | None = None, preset: str | None = None, pix_fmt: str | None = None,
                   encoder_options: dict[str, str] | None = None, start: float | None = None, duration: float | None = None,
                   frames: int | None = None, overwrite: bool = False, on_error: str = "fail",
                   segment_frames: int = DEFAULT_SEGMENT_FRAMES, segment_seconds: float | None = None) -> TranscodePlan:
    """Check the paths and settings, index ``src`` and cut the selection into segments (see :func:`transcode`).

    ``segment_seconds``, when given, sets the segment length from the source's frame rate instead
    of ``segment_frames``.
    """
    if on_error not in ("fail", "skip"):
        raise TranscodeError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
    if duration is not None and frames is not None:
        raise TranscodeError("give --duration or --frames, not both")
    src, dst = _check_paths(src, dst, overwrite)
    source = probe(src)
    index = index_frames(src, source, on_error)
    first, stop = index.select(source.time_base, start, duration, frames)
    window = (int(index.pts[first]) * source.time_base if first > 0 else None,
              index.end_of(stop) * source.time_base if stop < len(index.pts) else None)
    plan = plan_video(source, scale, output_format(dst), codec, crf, preset, pix_fmt, encoder_options)
    if segment_seconds is not None:
        segment_frames = max(1, round(segment_seconds * source.rate))
    segments = plan_segments(index.pts[first:stop], segment_frames, index.end_of(stop), plan)
    settings = {"scale": scale, "model": str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__,
                "video": plan.to_json(), "start": start, "duration": duration, "frames": frames, "segment_frames": segment_frames}
    return TranscodePlan(src, dst, source, int(index.pts[0]), window, plan, segments,
                         TranscodeJob(str(src), str(dst), stop - first, settings))


def finish_transcode(plan: TranscodePlan, work: WorkDir, summary: TranscodeSummary, overwrite: bool = False) -> None:
    """Mux the finished segments in ``work`` with the other streams into ``plan.dst`` (atomically),
    fill in ``summary`` and remove ``work``."""
    results = [work.done[s.index] for s in plan.segments]
    summary.frames = sum(r.frames for r in results)
    summary.decode_errors = sum(r.errors for r in results)
    files = [work.path / r.file for r in results if r.file]
    if not files:
        raise TranscodeError(f"{plan.src}: no frame of the selection decoded")
    with atomic_path(plan.dst, overwrite=overwrite) as tmp:
        report = mux(plan.src, tmp, files, plan.source, plan.segments[-1].end_pts * plan.source.time_base, plan.window)
    summary.streams = {"copied": report.copied, "reencoded": report.reencoded, "dropped": report.dropped}
    summary.bytes = plan.dst.stat().st_size
    work.remove()


def transcode(src: str | os.PathLike, dst: str | os.PathLike, scale: int = 2, model: Any = "idsa-net-s",
              weights: str | os.PathLike | None = None, *, codec: str = DEFAULT_CODEC, crf: int | None = None,
              preset: str | None = None, pix_fmt: str | None = None, encoder_options: dict[str, str] | None = None,
              device: str | None = None, dtype: str | None = None, batch: int | None = None, tile: Any = None,
              overlap: int | None = None, pre: Sequence[Any] | None = None, post: Sequence[Any] | None = None,
              start: float | None = None, duration: float | None = None, frames: int | None = None,
              overwrite: bool = False, resume: bool = False, on_error: str = "fail",
              segment_frames: int = DEFAULT_SEGMENT_FRAMES, progress: bool = False, backend: str = "torch",
              compile: bool = False) -> TranscodeSummary:
    """Upscale the video of ``src`` into ``dst`` and keep every other stream, timing and colour.

    ``model`` is a registered name, a weights file or a loaded module; ``codec`` any FFmpeg video
    encoder (libx264 by default, libx265, libsvtav1, ffv1); ``encoder_options`` extra encoder
    options (e.g. ``{"threads": "2"}``). ``start``/``duration`` (seconds) or ``frames`` select a
    part. ``resume`` keeps the work folder on failure and continues from it. ``on_error`` is
    ``"fail"`` (stop at the first corrupt frame) or ``"skip"`` (drop and count bad frames).
    Returns a :class:`TranscodeSummary`; raises :class:`TranscodeError` with a one-line message.
    """
    plan = plan_transcode(src, dst, scale, model, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt,
                          encoder_options=encoder_options, start=start, duration=duration, frames=frames,
                          overwrite=overwrite, on_error=on_error, segment_frames=segment_frames)
    job, segments = plan.job, plan.segments
    from idsa_plugin.engine import Engine

    engine = Engine(model, scale=scale, weights=weights, device=device, dtype=dtype, batch=batch, tile=tile,
                    overlap=overlap, pre=pre, post=post, job=job, backend=backend, compile=compile)
    key = fingerprint(plan.src, job.settings, engine)
    summary = plan.summary()
    host = get_host()
    host.call("job_started", job=job)
    began = time.perf_counter()
    work: WorkDir | None = None
    try:
        work = WorkDir(plan.dst, key, resume)
        done = dict(work.done)
        summary.resumed_frames = sum(r.frames for r in done.values())
        from tqdm import tqdm

        with tqdm(total=job.frames, initial=sum(s.frames for s in segments if s.index in done), unit="frame",
                  disable=not progress, file=sys.stderr, dynamic_ncols=True, desc=plan.dst.name) as bar:
            for run in _consecutive([s for s in segments if s.index not in done]):
                encode_segments(plan.src, run, plan.source, plan.video, engine, work.path, plan.index_start, on_error,
                                on_segment=work.record, on_frame=lambda: bar.update(1))
        finish_transcode(plan, work, summary, overwrite)
    except BaseException as exc:
        summary.error = _message(exc) or type(exc).__name__
        if work is not None and not resume:
            work.remove()
        if _disk_full(exc):
            raise TranscodeError(f"disk full while writing {plan.dst} ({plan.dst.parent}): free some space"
                                 + (" and run again with --resume" if resume else "")) from None
        raise
    finally:
        summary.seconds = time.perf_counter() - began
        summary.fps = (summary.frames - summary.resumed_frames) / summary.seconds if summary.seconds else 0.0
        host.call("job_finished", job=job, summary=summary)
    return summary


def _consecutive(segments: Iterable[Segment]) -> Iterator[list[Segment]]:
    """Runs of consecutive segments (one decode pass each)."""
    run: list[Segment] = []
    for segment in segments:
        if run and segment.index != run[-1].index + 1:
            yield run
            run = []
        run.append(segment)
    if run:
        yield run
