"""Decoding a run of frames: seeking to a keyframe before it, and counting the frames that fail."""
from __future__ import annotations

import bisect
import itertools
import logging
import os
import threading
from fractions import Fraction
from typing import TYPE_CHECKING, Iterator, Sequence

import av

from .errors import TranscodeError, message
from .probe import SourceVideo

if TYPE_CHECKING:
    from .segments import Segment

log = logging.getLogger("idsa_plugin")


class DecodeErrors:
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
        """The count of segment ``index``, forgotten."""
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


def _good_frames(container: av.container.InputContainer, stream: av.VideoStream, first: int,
                 errors: DecodeErrors) -> Iterator[av.VideoFrame]:
    """Frames from the current position with strictly increasing pts; bad ones at or after ``first`` are counted."""
    last: int | None = None
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            if packet.pts is None or packet.pts >= first:
                errors.add(packet.pts, message(exc))
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
                  errors: DecodeErrors, index_start: int) -> Iterator[av.VideoFrame]:
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
