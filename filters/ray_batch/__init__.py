"""Ray adapter: upscale a video library, and single long videos, across workers and machines.

:func:`batch_transcode` plans every video here (probe, frame index and the GOP-aligned segments
that ``transcode --resume`` uses), then Ray actors, each holding the model once (one GPU each on
GPU hosts, else ``threads`` CPU cores), encode one segment per call with the transcoder's
:func:`~idsa_plugin.filters.pyav.encode_segments`. Segments of all videos share one queue, so a
long video spreads over many workers just as many videos do. When the last segment of a video is
in, it is concatenated and muxed with the other streams here, once, exactly as ``transcode`` does
(:func:`~idsa_plugin.filters.pyav.finish_transcode`): same frames, pts and streams.

What crosses the network: a video's plan (a few kB, once per video through the object store), a
segment request and its result (~100 bytes each) and the encoded segment. A worker that sees the
work folder (a shared filesystem; it checks a token written there) writes the segment file into
it, else it returns the bytes and they are written here. Decoded and upscaled frames never leave
a worker. Inputs must be readable at the same path on every worker host.

Faults: a worker that dies (killed, out of memory, lost host) is restarted by Ray (up to
``MAX_RESTARTS`` times) and its segment goes back to the front of the queue for the next live
worker (up to ``MAX_ATTEMPTS`` tries); one that comes back unable to work is set aside. Every
video's work folder is resumable (``.NAME.resume`` beside the output, the same state as
``transcode --resume``): a re-run skips finished segments, and outputs that exist are skipped
whole. Segment files and outputs are written under temporary names and renamed when complete, so
nothing partial appears at an output path.

Modules: ``tasks`` (what travels), ``worker`` (the actor), ``cluster`` (Ray and the workers),
``driver`` (the scheduling loop), ``events`` (events, progress, summary), ``targets``.
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..pyav import DEFAULT_CODEC, DEFAULT_SEGMENT_FRAMES, TranscodeError, TranscodeSummary, message, plan_transcode
from .cluster import MAX_RESTARTS, RAY_MISSING, connect, start_workers
from .driver import MAX_ATTEMPTS, Driver, Video, finished, open_work
from .events import BatchEvent, BatchSummary, Progress
from .targets import VIDEO_EXTENSIONS, targets
from .tasks import SegmentDone, VideoTask, WorkerInfo
from .worker import TOKEN_FILE, SegmentWorker

if TYPE_CHECKING:
    from idsa_plugin.engine import EngineOptions

__all__ = ["MAX_ATTEMPTS", "MAX_RESTARTS", "RAY_MISSING", "TOKEN_FILE", "VIDEO_EXTENSIONS", "BatchEvent", "BatchSummary",
           "SegmentDone", "SegmentWorker", "VideoTask", "WorkerInfo", "batch_transcode", "targets"]


def _plan_videos(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, scale: int, model: Any, ext: str | None,
                 overwrite: bool, summary: BatchSummary, plan_options: dict[str, Any]) -> list[Video]:
    """Plan every video whose output is to be written; skipped and unplannable ones go into ``summary``."""
    videos: list[Video] = []
    for src, dst in targets(inputs, out_dir, ext):
        if dst.exists() and not overwrite:
            summary.skipped.append(str(dst))
            continue
        try:
            plan = plan_transcode(src, dst, scale, model, overwrite=overwrite, **plan_options)
        except (TranscodeError, OSError) as exc:
            summary.videos.append(TranscodeSummary(str(src), str(dst), error=message(exc)))
            continue
        videos.append(Video(plan, plan.summary()))
        summary.videos.append(videos[-1].summary)
    return videos


def _run(videos: list[Video], actors: list[Any], summary: BatchSummary, overwrite: bool, on_error: str, progress: bool,
         on_event: Callable[[BatchEvent], None] | None) -> None:
    """Open the work folders (fingerprints from the first worker), then drive the workers to the end."""
    import ray

    jobs = [(str(v.plan.src.resolve()), v.plan.job.settings, v.plan.video.bits) for v in videos]
    for video, (key, engine) in zip(videos, ray.get(actors[0].fingerprints.remote(jobs))):
        open_work(video, key, on_error, engine)
        summary.resumed_segments += len(video.plan.segments) - video.remaining
    bar = Progress(len(videos), sum(len(v.plan.segments) for v in videos), sum(v.plan.job.frames for v in videos),
                   summary.resumed_segments, sum(v.summary.resumed_frames for v in videos), progress)

    def emit(event: BatchEvent) -> None:
        bar(event)
        if on_event is not None:
            on_event(event)

    try:
        for w, info in enumerate(summary.workers):
            emit(BatchEvent("worker", worker=w, pid=info.pid))
        Driver(actors, videos, summary, overwrite, emit).run()
    finally:
        bar.close()


def batch_transcode(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, scale: int = 2,
                    model: Any = "idsa-net-s", weights: str | os.PathLike | None = None, *, ext: str | None = None,
                    ray_address: str | None = None, workers: int | None = None, threads: int = 1,
                    segment_seconds: float | None = None, overwrite: bool = False, on_error: str = "fail",
                    progress: bool = False, on_event: Callable[[BatchEvent], None] | None = None,
                    options: EngineOptions | None = None, **keywords: Any) -> BatchSummary:
    """Upscale every video of ``inputs`` (files, or folders searched for video files) into ``out_dir``.

    The encoding and selection keywords (``codec``, ``crf``, ``preset``, ``pix_fmt``, ``encoder_options``,
    ``segment_frames``, ``start``, ``duration``, ``frames``) and the engine's (``options`` and its fields
    ``device``, ``dtype``, ``batch``, ``tile``, ``overlap``, ``pre``, ``post``, ``backend``, ``compile``)
    are those of :func:`~idsa_plugin.filters.pyav.transcode`, applied to each video. ``ray_address``
    joins a running cluster (e.g. "auto" or "HOST:6379"); without it a local Ray runtime starts here
    (and stops at the end) unless Ray is already initialised in this process. ``workers`` defaults to
    one per GPU in the cluster, else one per ``threads`` CPUs. ``segment_seconds`` (or ``segment_frames``)
    is the unit of work. ``on_event`` receives every :class:`BatchEvent`. A video that fails is reported
    in its summary's ``error`` and does not stop the others. Returns a :class:`BatchSummary`.
    """
    try:
        import ray
    except ImportError:
        raise TranscodeError(RAY_MISSING) from None
    from idsa_plugin.engine import EngineOptions

    plan_options, engine_keywords = _split_keywords(keywords)
    options = EngineOptions.of(options, **engine_keywords)
    if threads < 1:
        raise TranscodeError(f"threads must be at least 1, not {threads}")
    began = time.perf_counter()
    summary = BatchSummary()
    plan_options.update(on_error=on_error, segment_seconds=segment_seconds)
    videos = _plan_videos(inputs, out_dir, scale, model, ext, overwrite, summary, plan_options)
    if not videos:
        return summary
    started = connect(ray_address, max(os.cpu_count() or 1, (workers or 0) * threads))
    actors: list[Any] = []
    try:
        actors, summary.workers = start_workers(workers, threads, model, {"scale": scale, "weights": weights, "options": options})
        _run(videos, actors, summary, overwrite, on_error, progress, on_event)
    except BaseException as exc:
        for video in videos:
            if video.work is not None and not video.finished:
                video.summary.error = message(exc) or type(exc).__name__
                finished(video)
        raise
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
        summary.seconds = time.perf_counter() - began
        summary.fps = summary.frames / summary.seconds if summary.seconds else 0.0
    return summary


_PLAN_KEYWORDS = {"codec": DEFAULT_CODEC, "crf": None, "preset": None, "pix_fmt": None, "encoder_options": None,
                  "segment_frames": DEFAULT_SEGMENT_FRAMES, "start": None, "duration": None, "frames": None}


def _split_keywords(keywords: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The encoding and selection keywords (with their defaults), and the rest: the engine's."""
    plan = {name: keywords.get(name, default) for name, default in _PLAN_KEYWORDS.items()}
    return plan, {k: v for k, v in keywords.items() if k not in _PLAN_KEYWORDS}
