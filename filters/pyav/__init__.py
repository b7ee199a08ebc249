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

Modules, one role each: ``probe`` (the source), ``plan`` and ``hdr`` (the encoding), ``decode``,
``segments`` (the pipeline), ``mux``, ``workdir`` (resume state), ``errors``; this one is the API.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from idsa_plugin.atomic import atomic_path, check_target
from idsa_plugin.hookspecs import Job
from idsa_plugin.plugins import get_host

from .decode import DecodeErrors, decode_frames
from .errors import TranscodeError, disk_full, message
from .hdr import HDR_CODECS, hdr_options
from .mux import READ_PAST, MuxReport, decode_timestamps, mux, video_packets
from .plan import (CODEC_DEFAULTS, DEFAULT_CODEC, SEGMENT_FORMATS, VideoPlan, add_video_stream, choose_pix_fmt,
                   header_error, output_format, plan_video)
from .probe import Colour, FrameIndex, SourceVideo, index_frames, open_input, probe
from .segments import (DEFAULT_SEGMENT_FRAMES, QUEUE_FRAMES, Segment, SegmentResult, SegmentWriter, encode_segments,
                       plan_segments)
from .workdir import STATE_VERSION, WorkDir, fingerprint

if TYPE_CHECKING:  # torch loads only when a transcode runs
    from idsa_plugin.engine import Engine, EngineOptions

__all__ = [
    "CODEC_DEFAULTS", "DEFAULT_CODEC", "DEFAULT_SEGMENT_FRAMES", "HDR_CODECS", "QUEUE_FRAMES", "READ_PAST",
    "SEGMENT_FORMATS", "STATE_VERSION", "Colour", "DecodeErrors", "FrameIndex", "MuxReport", "Segment",
    "SegmentResult", "SegmentWriter", "SourceVideo", "TranscodeError", "TranscodeJob", "TranscodePlan",
    "TranscodeSummary", "VideoPlan", "WorkDir", "add_video_stream", "choose_pix_fmt", "decode_frames",
    "decode_timestamps", "disk_full", "encode_segments", "finish_transcode", "fingerprint", "hdr_options",
    "header_error", "index_frames", "make_engine", "message", "mux", "open_input", "output_format",
    "plan_segments", "plan_transcode", "plan_video", "probe", "transcode", "video_packets",
]

TranscodeJob = Job  # the name before jobs were one type (``idsa_plugin.hookspecs.Job``)


@dataclass
class TranscodeSummary:
    """Counts and timings of a transcode (``error`` set when it failed); ``engine``: the engine's resolved settings."""

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
    engine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        done = f"{self.frames} frames" + (f" ({self.resumed_frames} from a resumed run)" if self.resumed_frames else "")
        kept = ", ".join(f"{len(v)} {k}" for k, v in self.streams.items() if v)
        on = f" on {self.engine['device']} {self.engine['dtype']}" if self.engine else ""
        return (f"{done} in {self.seconds:.1f} s ({self.fps:.2f} fps){on} -> {self.output} "
                f"({self.width}x{self.height} {self.codec} {self.pix_fmt}, {self.bytes / 1e6:.2f} MB)"
                + (f"; other streams: {kept}" if kept else "") + (f"; {self.decode_errors} decode errors" if self.decode_errors else ""))


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
    job: Job

    def summary(self) -> TranscodeSummary:
        return TranscodeSummary(str(self.src), str(self.dst), width=self.video.width, height=self.video.height,
                                codec=self.video.codec, pix_fmt=self.video.pix_fmt)


def _check_paths(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool) -> tuple[Path, Path]:
    src_path, dst_path = Path(src), Path(dst)
    if dst_path.resolve() == src_path.resolve() or (dst_path.exists() and src_path.exists() and os.path.samefile(src_path, dst_path)):
        raise TranscodeError(f"{dst_path}: the output is the input; choose another file")
    if dst_path.is_dir():
        raise TranscodeError(f"{dst_path}: is a folder; give an output file")
    check_target(dst_path, overwrite)
    return src_path, dst_path


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
    return TranscodePlan(src, dst, source, int(index.pts[0]), window, plan, segments, Job(str(src), str(dst), stop - first, settings))


def make_engine(model: Any, plan: TranscodePlan, weights: str | os.PathLike | None = None,
                options: EngineOptions | None = None) -> Engine:
    """The engine for ``plan``: its scale and output depth (which the automatic precision needs), reporting to its job."""
    from idsa_plugin.engine import Engine

    return Engine(model, scale=plan.job.settings["scale"], weights=weights, options=options,
                  output_bits=plan.video.bits, job=plan.job)


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


def _encode_missing(plan: TranscodePlan, engine: Engine, work: WorkDir, on_error: str, progress: bool) -> None:
    """Encode the segments that ``work`` does not hold yet, one decode pass per run of consecutive ones."""
    from tqdm import tqdm

    missing = [s for s in plan.segments if s.index not in work.done]
    with tqdm(total=plan.job.frames, initial=plan.job.frames - sum(s.frames for s in missing), unit="frame",
              disable=not progress, file=sys.stderr, dynamic_ncols=True, desc=plan.dst.name) as bar:
        for run in _consecutive(missing):
            encode_segments(plan.src, run, plan.source, plan.video, engine, work.path, plan.index_start, on_error,
                            on_segment=work.record, on_frame=lambda: bar.update(1))


def transcode(src: str | os.PathLike, dst: str | os.PathLike, scale: int = 2, model: Any = "idsa-net-s",
              weights: str | os.PathLike | None = None, *, codec: str = DEFAULT_CODEC, crf: int | None = None,
              preset: str | None = None, pix_fmt: str | None = None, encoder_options: dict[str, str] | None = None,
              start: float | None = None, duration: float | None = None, frames: int | None = None,
              overwrite: bool = False, resume: bool = False, on_error: str = "fail",
              segment_frames: int = DEFAULT_SEGMENT_FRAMES, progress: bool = False,
              options: EngineOptions | None = None, **engine_options: Any) -> TranscodeSummary:
    """Upscale the video of ``src`` into ``dst`` and keep every other stream, timing and colour.

    ``model`` is a registered name, a weights file or a loaded module; ``codec`` any FFmpeg video
    encoder (libx264 by default, libx265, libsvtav1, ffv1); ``encoder_options`` extra encoder
    options (e.g. ``{"threads": "2"}``). ``start``/``duration`` (seconds) or ``frames`` select a
    part. ``resume`` keeps the work folder on failure and continues from it. ``on_error`` is
    ``"fail"`` (stop at the first corrupt frame) or ``"skip"`` (drop and count bad frames).
    How the model runs: ``options`` (:class:`~idsa_plugin.engine.EngineOptions`), with its fields as
    keywords overriding it: ``device``, ``dtype``, ``batch``, ``tile``, ``overlap``, ``pre``, ``post``,
    ``backend``, ``compile``. Returns a :class:`TranscodeSummary`; raises :class:`TranscodeError`
    with a one-line message.
    """
    from idsa_plugin.engine import EngineOptions

    options = EngineOptions.of(options, **engine_options)
    plan = plan_transcode(src, dst, scale, model, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt,
                          encoder_options=encoder_options, start=start, duration=duration, frames=frames,
                          overwrite=overwrite, on_error=on_error, segment_frames=segment_frames)
    engine = make_engine(model, plan, weights, options)
    key = fingerprint(plan.src, plan.job.settings, engine)
    plan.job.settings["engine"] = engine.describe()
    summary = plan.summary()
    summary.engine = plan.job.settings["engine"]
    host = get_host()
    host.call("job_started", job=plan.job)
    began = time.perf_counter()
    work: WorkDir | None = None
    try:
        work = WorkDir(plan.dst, key, resume)
        summary.resumed_frames = sum(r.frames for r in work.done.values())
        _encode_missing(plan, engine, work, on_error, progress)
        finish_transcode(plan, work, summary, overwrite)
    except BaseException as exc:
        summary.error = message(exc) or type(exc).__name__
        if work is not None and not resume:
            work.remove()
        if disk_full(exc):
            raise TranscodeError(f"disk full while writing {plan.dst} ({plan.dst.parent}): free some space"
                                 + (" and run again with --resume" if resume else "")) from None
        raise
    finally:
        summary.seconds = time.perf_counter() - began
        summary.fps = (summary.frames - summary.resumed_frames) / summary.seconds if summary.seconds else 0.0
        host.call("job_finished", job=plan.job, summary=summary)
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
