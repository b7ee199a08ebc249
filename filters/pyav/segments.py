"""Segments: closed-GOP runs of frames, each encoded into its own file.

:func:`encode_segments` runs one pass over consecutive segments as a pipeline of stop-aware stages
(:mod:`idsa_plugin.pipeline`): a decoding thread, a thread that feeds the engine's stream, and an
encoding thread, joined by bounded queues. When a stage fails the call raises at once; the other
stages end as soon as what they wait on (the source, the model) returns.
"""
from __future__ import annotations

import bisect
import contextlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import av
import numpy as np
from av.video.reformatter import Colorspace

from idsa_plugin.pipeline import END, POLL_SECONDS, Stage, get, put

from .decode import DecodeErrors, decode_frames
from .plan import SEGMENT_FORMATS, VideoPlan, add_video_stream
from .probe import UNSPECIFIED_MATRIX, UNSPECIFIED_RANGE, SourceVideo, open_input

if TYPE_CHECKING:  # torch loads only when a transcode runs
    from idsa_plugin.engine import Engine, Frame

DEFAULT_SEGMENT_FRAMES = 240
QUEUE_FRAMES = 4
# AVColorSpace -> swscale matrix for the RGB -> YUV conversion.
_SWS_MATRIX = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
               7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}


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


class _SegmentPipeline:
    """One decode -> engine -> encode pass over consecutive segments."""

    def __init__(self, src: str | os.PathLike, segments: Sequence[Segment], source: SourceVideo, plan: VideoPlan,
                 engine: Engine, work: Path, index_start: int, on_error: str,
                 on_segment: Callable[[SegmentResult], None] | None, on_frame: Callable[[], None] | None) -> None:
        self.src, self.segments, self.source, self.plan, self.engine, self.work = src, segments, source, plan, engine, work
        self.index_start, self.on_segment, self.on_frame = index_start, on_segment, on_frame
        self.errors = DecodeErrors(src, segments, source.time_base, on_error)
        self.stop = threading.Event()
        self.decoded: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.upscaled: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.results: list[SegmentResult] = []
        self.decoder = Stage("idsa-decode", self._decode)
        self.feeder = Stage("idsa-feed", self._feed)
        self.encoder = Stage("idsa-encode", self._encode)

    def _decode(self) -> None:
        from idsa_plugin.engine import Frame

        first, end, colour = self.segments[0].start_pts, self.segments[-1].end_pts, self.source.colour
        with open_input(self.src) as container:
            for frame in decode_frames(container, self.source, first, end, self.errors, self.index_start):
                if frame.colorspace == UNSPECIFIED_MATRIX and colour.matrix != UNSPECIFIED_MATRIX:
                    frame.colorspace = colour.matrix
                if frame.color_range == UNSPECIFIED_RANGE:
                    frame.color_range = colour.range
                put(self.decoded, Frame(frame.to_ndarray(format=self.plan.rgb), frame.pts), self.stop)
        put(self.decoded, END, self.stop)

    def _frames_in(self) -> Iterator[Frame]:
        while (item := get(self.decoded, self.stop, self.decoder)) is not END:
            yield item

    def _feed(self) -> None:
        with contextlib.closing(self.engine.stream(self._frames_in())) as upscaled:
            for frame in upscaled:
                put(self.upscaled, frame, self.stop, self.encoder)
        put(self.upscaled, END, self.stop, self.encoder)

    def _finish(self, writer: SegmentWriter | None, upto: int) -> None:
        """Close the open segment and record every segment before ``upto`` as done."""
        while len(self.results) < upto:
            segment = self.segments[len(self.results)]
            frames = 0
            if writer is not None and writer.path.name == segment.file:
                writer.close()
                frames = writer.frames
            result = SegmentResult(segment.index, segment.file if frames else None, frames, self.errors.pop(segment.index))
            self.results.append(result)
            if self.on_segment is not None:
                self.on_segment(result)

    def _encode(self) -> None:
        starts = [s.start_pts for s in self.segments]
        writer: SegmentWriter | None = None
        try:
            while (item := get(self.upscaled, self.stop, self.feeder)) is not END:
                k = bisect.bisect_right(starts, item.meta) - 1
                if writer is None or writer.path.name != self.segments[k].file:
                    self._finish(writer, k)
                    writer = SegmentWriter(self.work / self.segments[k].file, self.plan)
                writer.write(item.image, item.meta)
                if self.on_frame is not None:
                    self.on_frame()
            self._finish(writer, len(self.segments))
        except BaseException:
            if writer is not None:
                writer.abort()
            raise

    def run(self) -> list[SegmentResult]:
        stages = (self.decoder, self.feeder, self.encoder)
        for stage in stages:
            stage.start()
        try:
            while self.encoder.is_alive():
                self.encoder.join(POLL_SECONDS)
                self._raise_failure(stages)
            self._raise_failure(stages)
        finally:
            self.stop.set()
            self.encoder.join()  # prompt once stopped; it removes its unfinished segment file
        return self.results

    @staticmethod
    def _raise_failure(stages: Sequence[Stage]) -> None:
        for stage in stages:  # upstream first: its error is the cause of the others'
            if (error := stage.failure()) is not None:
                raise error


def encode_segments(src: str | os.PathLike, segments: Sequence[Segment], source: SourceVideo, plan: VideoPlan,
                    engine: Engine, work_dir: str | os.PathLike, index_start: int, on_error: str = "fail",
                    on_segment: Callable[[SegmentResult], None] | None = None,
                    on_frame: Callable[[], None] | None = None) -> list[SegmentResult]:
    """Decode, upscale and encode consecutive ``segments`` of ``src`` into their files in ``work_dir``.

    ``on_segment`` is called (from the encoding thread) as each segment file is complete, ``on_frame``
    after each frame; ``index_start`` is the first pts of the whole video (seeking before it is pointless).
    """
    if not segments:
        return []
    return _SegmentPipeline(src, segments, source, plan, engine, Path(work_dir), index_start, on_error,
                            on_segment, on_frame).run()
