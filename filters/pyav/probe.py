"""What the source holds: its video stream's properties and the timestamps of every frame."""
from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from av.sidedata.sidedata import Type as SideData
from av.stream import Disposition

from .errors import TranscodeError, bad_input, message

UNSPECIFIED_MATRIX, UNSPECIFIED_RANGE, MPEG_RANGE = 2, 0, 1
BT709, SMPTE170M = 1, 6


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
        raise TranscodeError(f"{path}: not a media file, or damaged beyond reading ({message(exc)})") from None


def chroma(fmt: av.VideoFormat) -> str:
    """The chroma family of a pixel format: "420", "422", "444" (RGB too) or "gray"."""
    if len(fmt.components) < 3:
        return "gray"
    if fmt.is_rgb:
        return "444"
    sample = av.VideoFormat(fmt.name, 64, 64)
    return {(64, 64): "444", (32, 64): "422"}.get((sample.chroma_width(), sample.chroma_height()), "420")


def bits(fmt: av.VideoFormat) -> int:
    """Bits per sample of a pixel format."""
    return max(c.bits for c in fmt.components)


def _first_frames(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.VideoFrame]:
    """Decoded frames, skipping packets that fail (the transcode counts those)."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.FFmpegError:
            continue


def _first_frame(container: av.container.InputContainer, src: str | os.PathLike) -> tuple[av.VideoStream, av.VideoFrame]:
    stream = next((s for s in container.streams.video if not s.disposition & Disposition.attached_pic), None)
    if stream is None:
        raise TranscodeError(f"{src}: no video stream")
    first = next(_first_frames(container, stream), None)
    if first is None:
        raise TranscodeError(f"{src}: the video stream has no decodable frame")
    return stream, first


def _colour(frame: av.VideoFrame) -> Colour:
    """The frame's tags; an untagged matrix as BT.601 below 720 lines and BT.709 from 720 up."""
    fmt = frame.format
    range_ = {"yuvj420p": 2, "yuvj422p": 2, "yuvj444p": 2}.get(fmt.name, frame.color_range)
    matrix = frame.colorspace
    if matrix == UNSPECIFIED_MATRIX and not fmt.is_rgb:
        matrix = BT709 if frame.height >= 720 else SMPTE170M
    return Colour(range_ or MPEG_RANGE, matrix, frame.color_primaries, frame.color_trc)


def probe(src: str | os.PathLike) -> SourceVideo:
    """Read the video stream's properties and its first frame's side data (HDR, rotation)."""
    with open_input(src) as container:
        stream, first = _first_frame(container, src)
        side = first.side_data
        matrix_data = side.get(SideData.DISPLAYMATRIX)
        sar = stream.codec_context.sample_aspect_ratio
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        return SourceVideo(
            index=stream.index, width=first.width, height=first.height, bits=bits(first.format),
            chroma=chroma(first.format), time_base=Fraction(stream.time_base), rate=Fraction(rate),
            sar=Fraction(sar) if sar else None, colour=_colour(first),
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


def _packet_times(container: av.container.InputContainer, stream: av.VideoStream, src: str | os.PathLike,
                  on_error: str) -> tuple[list[int], int | None]:
    """The video packets' pts and the latest end their durations give, from a demux-only pass."""
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
        bad_input(src, f"unreadable after {len(pts)} frames ({message(exc)})", on_error)
    if not pts:
        raise TranscodeError(f"{src}: the video stream holds no frames")
    return pts, end


def index_frames(src: str | os.PathLike, source: SourceVideo, on_error: str = "fail") -> FrameIndex:
    """Index the video frames from a demux-only pass (no decoding).

    A file that declares more frames (or a later end) than it holds is truncated: an error with
    ``on_error="fail"``, a notice with ``"skip"``.
    """
    with open_input(src) as container:
        stream = container.streams[source.index]
        pts, end = _packet_times(container, stream, src, on_error)
        index = np.unique(np.asarray(pts, dtype=np.int64))
        last, tb = int(index[-1]), source.time_base
        step = int(round(1 / (source.rate * tb))) or 1
        seen = max(end or 0, last + step)  # packet durations: exact in Matroska, dts deltas in MP4
        declared = _declared_end(container, stream)
        if stream.frames > len(index) or (declared is not None and (seen + 2 * step) * tb + Fraction(1, 20) < declared):
            bad_input(src, f"truncated: video ends at {float(seen * tb):.3f} s of {float(declared or seen * tb):.3f} s "
                           f"({len(index)} of {stream.frames or '?'} frames)", on_error)
        elif declared is not None and declared > last * tb:
            seen = math.ceil(declared / tb)
        return FrameIndex(index, seen)
