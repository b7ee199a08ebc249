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
worker (up to ``MAX_ATTEMPTS`` tries). Every video's work folder is resumable (``.NAME.resume``
beside the output, the same state as ``transcode --resume``): a re-run skips finished segments,
and outputs that exist are skipped whole. Segment files and outputs are written under temporary
names and renamed when complete, so nothing partial appears at an output path.
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import os
import secrets
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from idsa_plugin.plugins import get_host

from .pyav import (DEFAULT_CODEC, DEFAULT_SEGMENT_FRAMES, Segment, SegmentResult, SourceVideo, TranscodeError,
                   TranscodePlan, TranscodeSummary, VideoPlan, WorkDir, _message, encode_segments, finish_transcode,
                   fingerprint, plan_transcode)

log = logging.getLogger("idsa_plugin")

MAX_RESTARTS = 3  # per worker
MAX_ATTEMPTS = 3  # per segment
TOKEN_FILE = "ray-token"
VIDEO_EXTENSIONS = {".mkv", ".mp4", ".mov", ".m4v", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv",
                    ".wmv", ".y4m", ".ogv"}
RAY_MISSING = "Ray is not installed: pip install 'idsa-plugin[ray]' (or pip install 'ray>=2.9')"


# ---- what travels between the driver and the workers -------------------------------------------
@dataclass(frozen=True)
class VideoTask:
    """What a worker needs to encode any segment of one video (put in the object store once)."""

    src: str  # absolute
    source: SourceVideo
    video: VideoPlan
    index_start: int
    on_error: str
    work_dir: str  # absolute
    token: str  # the content of ``work_dir/TOKEN_FILE``: a worker that reads it shares the folder


@dataclass(frozen=True)
class SegmentDone:
    """A worker's answer: the segment's result, its bytes when the worker does not share the work folder."""

    result: SegmentResult
    data: bytes | None
    seconds: float  # wall
    cpu_seconds: float  # the worker process, all threads
    pid: int


@dataclass(frozen=True)
class WorkerInfo:
    """A worker's process, host and device, or why it could not load the model."""

    pid: int
    host: str
    device: str
    error: str | None = None


class SegmentWorker:
    """The Ray actor: loads the model once, then encodes one segment per call."""

    def __init__(self, model: Any, engine_options: dict[str, Any], threads: int) -> None:
        import torch

        from idsa_plugin.engine import Engine

        torch.set_num_threads(threads)
        self.engine: Engine | None = None
        self.error: str | None = None
        try:
            self.engine = Engine(model, **engine_options)
        except Exception as exc:  # noqa: BLE001 - reported by info(), in one line
            self.error = _message(exc)

    def info(self) -> WorkerInfo:
        device = str(self.engine.device) if self.engine is not None else ""
        return WorkerInfo(os.getpid(), socket.gethostname(), device, self.error)

    def fingerprints(self, jobs: list[tuple[str, dict[str, Any]]]) -> list[str]:
        """Resume-state fingerprints of (source, settings) with this worker's model and device."""
        return [fingerprint(Path(src), settings, self.engine) for src, settings in jobs]

    def encode(self, task: VideoTask, segment: Segment) -> SegmentDone:
        began, cpu = time.perf_counter(), time.process_time()
        work = Path(task.work_dir)
        with contextlib.ExitStack() as stack:
            shared = _reads(work / TOKEN_FILE, task.token)
            folder = work if shared else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="idsa-segment-")))
            (result,) = encode_segments(task.src, [segment], task.source, task.video, self.engine, folder,
                                        task.index_start, task.on_error)
            data = None if shared or result.file is None else (folder / result.file).read_bytes()
        return SegmentDone(result, data, time.perf_counter() - began, time.process_time() - cpu, os.getpid())


def _reads(path: Path, token: str) -> bool:
    try:
        return path.read_text() == token
    except OSError:
        return False


# ---- events, progress and summary --------------------------------------------------------------
@dataclass(frozen=True)
class BatchEvent:
    """What :func:`batch_transcode` reports to ``on_event`` (and its progress bar) as it goes.

    ``kind``: "worker" (a worker is ready, again after a restart), "dispatch" (a segment was sent
    to a worker), "segment" (a segment is done), "retry" (a worker died: its segment is queued
    again), "video" (an output is written), "failed" (a video failed).
    """

    kind: str
    video: str | None = None  # the output path
    segment: int | None = None
    frames: int = 0
    worker: int | None = None
    pid: int | None = None
    seconds: float = 0.0  # "segment": the worker's wall time for it; "video": concatenating and muxing it
    cpu_seconds: float = 0.0  # "segment": the worker process's CPU time for it
    message: str | None = None


@dataclass
class BatchSummary:
    """Counts and timings of a batch; ``videos`` in input order (``error`` set on the failed ones)."""

    videos: list[TranscodeSummary] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # outputs that existed
    workers: list[WorkerInfo] = field(default_factory=list)
    frames: int = 0  # encoded in this run
    segments: int = 0  # encoded in this run
    resumed_segments: int = 0
    retries: int = 0
    seconds: float = 0.0
    fps: float = 0.0

    @property
    def failed(self) -> list[TranscodeSummary]:
        return [v for v in self.videos if v.error is not None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        if not self.videos:
            return f"nothing to do: {len(self.skipped)} outputs exist (skipped; --overwrite redoes them)"
        done = len(self.videos) - len(self.failed)
        return (f"{done} videos, {self.frames} frames in {self.segments} segments"
                + (f" ({self.resumed_segments} segments from a previous run)" if self.resumed_segments else "")
                + f" in {self.seconds:.1f} s ({self.fps:.2f} fps) on {len(self.workers)} workers"
                + (f"; {self.retries} segments retried" if self.retries else "")
                + (f"; {len(self.skipped)} skipped (output exists)" if self.skipped else "")
                + (f"; {len(self.failed)} failed" if self.failed else ""))


class _Progress:
    """One tqdm bar on stderr for the whole batch: frames (fps, ETA), videos and segments."""

    def __init__(self, videos: int, segments: int, frames: int, resumed_segments: int, resumed_frames: int,
                 enabled: bool) -> None:
        from tqdm import tqdm

        self.videos, self.segments = videos, segments
        self.videos_done, self.segments_done, self.retries = 0, resumed_segments, 0
        self.bar = tqdm(total=frames, initial=resumed_frames, unit="frame", desc="batch", disable=not enabled,
                        file=sys.stderr, dynamic_ncols=True)
        self._postfix()

    def __call__(self, event: BatchEvent) -> None:
        if event.kind == "segment":
            self.segments_done += 1
        elif event.kind == "retry":
            self.retries += 1
        elif event.kind in ("video", "failed"):
            self.videos_done += 1
            if event.kind == "failed":  # frames that will not come
                self.bar.total -= event.frames
        else:
            return
        self._postfix()
        if event.kind == "segment":
            self.bar.update(event.frames)
        else:
            self.bar.refresh()

    def _postfix(self) -> None:
        self.bar.set_postfix_str(f"videos {self.videos_done}/{self.videos}, segments {self.segments_done}/{self.segments}"
                                 + (f", {self.retries} retried" if self.retries else ""), refresh=False)

    def close(self) -> None:
        self.bar.close()


# ---- the driver --------------------------------------------------------------------------------
@dataclass(eq=False)
class _Video:
    """One video in flight on the driver."""

    plan: TranscodePlan
    summary: TranscodeSummary
    work: WorkDir | None = None
    task: Any = None  # ObjectRef of its VideoTask
    remaining: int = 0  # segments not yet done
    began: float = 0.0
    failed: bool = False
    finished: bool = False  # job_finished was called


def targets(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, ext: str | None = None) -> list[tuple[Path, Path]]:
    """(source, output) pairs: files go to ``out_dir/NAME``, the video files under a folder (but not
    under ``out_dir``, nor hidden) to ``out_dir/RELATIVE/PATH``; ``ext`` (e.g. "mkv") replaces the extension."""
    out = Path(out_dir)
    pairs: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                           and not p.name.startswith(".") and out.resolve() not in p.resolve().parents)
            pairs += [(p, out / p.relative_to(item)) for p in found]
        else:
            pairs.append((item, out / item.name))
    if ext:
        pairs = [(src, dst.with_suffix("." + ext.lstrip("."))) for src, dst in pairs]
    unique: dict[Path, tuple[Path, Path]] = {}
    for src, dst in pairs:
        if dst.resolve() == src.resolve():
            raise TranscodeError(f"{src}: the output would replace the input; choose another output folder or --ext")
        other, _ = unique.setdefault(dst.resolve(), (src, dst))
        if other.resolve() != src.resolve():
            raise TranscodeError(f"{other} and {src} would both be written to {dst}; rename one or use separate runs")
    return list(unique.values())


def _connect(address: str | None, cpus: int) -> bool:
    """Join the cluster at ``address``, or start a local Ray runtime; False when Ray was running already."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, **quiet)
    return True


def _worker_options(workers: int | None, threads: int, device: str | None) -> tuple[int, dict[str, Any]]:
    """How many workers, and each one's Ray resources: one GPU (where the cluster has them and
    ``device`` allows) or ``threads`` CPUs."""
    import ray

    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    use_gpu = gpus > 0 and (device is None or device.startswith("cuda"))
    if device is not None and device.startswith("cuda") and not gpus:
        raise TranscodeError(f"--device {device}, but the Ray cluster has no GPU")
    room = min(gpus, cpus // threads) if use_gpu else cpus // threads
    count = workers or room
    if count < 1 or count > room:
        raise TranscodeError(f"the Ray cluster ({cpus} CPUs, {gpus} GPUs) has room for {room} workers "
                             f"({'1 GPU' if use_gpu else f'{threads} CPUs'} each), not {count}")
    return count, {"num_cpus": threads, "num_gpus": 1 if use_gpu else 0, "max_restarts": MAX_RESTARTS,
                   "max_task_retries": 0, "scheduling_strategy": "SPREAD"}


class _Driver:
    """Feeds segments to idle workers, re-queues those of dead workers, muxes finished videos."""

    def __init__(self, actors: list[Any], videos: list[_Video], summary: BatchSummary, overwrite: bool,
                 emit: Callable[[BatchEvent], None]) -> None:
        import ray

        self.ray, self.actors, self.summary, self.overwrite, self.emit = ray, actors, summary, overwrite, emit
        self.queue: collections.deque[tuple[_Video, Segment, int]] = collections.deque(
            (v, s, 1) for v in videos for s in v.plan.segments if s.index not in v.work.done)
        self.idle = collections.deque(range(len(actors)))
        self.inflight: dict[Any, tuple[int, _Video | None, Segment | None, int]] = {}  # ref -> worker, video, segment, attempt
        self.deaths = [0] * len(actors)
        self.muxing: dict[concurrent.futures.Future, _Video] = {}
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="idsa-mux")
        self.lost = (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError, ray.exceptions.WorkerCrashedError,
                     ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError)
        for video in videos:
            if not video.remaining:
                self._mux(video)

    def run(self) -> None:
        try:
            while self.queue or self.muxing or any(video is not None for _, video, _, _ in self.inflight.values()):
                self._dispatch()
                if self.inflight:
                    ready, _ = self.ray.wait(list(self.inflight), num_returns=1, timeout=0.2)
                    for ref in ready:
                        self._collect(ref)
                done, _ = concurrent.futures.wait(self.muxing, timeout=0 if self.inflight else 0.2)
                for future in done:
                    self._muxed(future)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _dispatch(self) -> None:
        while self.idle and self.queue:
            video, segment, attempt = self.queue.popleft()
            w = self.idle.popleft()
            video.began = video.began or time.perf_counter()
            ref = self.actors[w].encode.remote(video.task, segment)
            self.inflight[ref] = (w, video, segment, attempt)
            self.emit(BatchEvent("dispatch", str(video.plan.dst), segment.index, segment.frames, w, self.summary.workers[w].pid))
        if not self.idle and not self.inflight and self.queue:
            raise TranscodeError(f"every worker died more than {MAX_RESTARTS} times; run again to continue")

    def _collect(self, ref: Any) -> None:
        w, video, segment, attempt = self.inflight.pop(ref)
        try:
            answer = self.ray.get(ref)
        except self.lost as exc:
            self._worker_lost(w, exc)
            if video is not None and not video.failed:
                self.summary.retries += 1
                self.emit(BatchEvent("retry", str(video.plan.dst), segment.index, segment.frames, w, message=_message(exc)))
                if attempt >= MAX_ATTEMPTS:
                    self._fail(video, f"segment {segment.index} lost its worker {attempt} times ({_message(exc)})")
                else:
                    self.queue.appendleft((video, segment, attempt + 1))
            return
        except self.ray.exceptions.RayTaskError as exc:
            self.idle.append(w)
            self._fail(video, _message(exc.cause if exc.cause is not None else exc))
            return
        if video is None:  # a worker is back after a restart
            self.summary.workers[w] = answer
            if answer.error:
                log.warning("worker %d (pid %d on %s) restarted but could not load the model: %s", w, answer.pid, answer.host, answer.error)
            else:
                self.idle.append(w)
                self.emit(BatchEvent("worker", worker=w, pid=answer.pid))
            return
        self.idle.append(w)
        if video.failed:
            return
        if answer.data is not None:
            path = video.work.path / answer.result.file
            part = path.with_name(path.name + ".part")
            part.write_bytes(answer.data)
            os.replace(part, path)
        video.work.record(answer.result)
        video.remaining -= 1
        self.summary.segments += 1
        self.summary.frames += answer.result.frames
        self.emit(BatchEvent("segment", str(video.plan.dst), segment.index, answer.result.frames, w, answer.pid,
                             answer.seconds, answer.cpu_seconds))
        if not video.remaining:
            self._mux(video)

    def _worker_lost(self, w: int, exc: BaseException) -> None:
        """Count a worker's death; while Ray restarts it, ask it for its info (it rejoins when that answers)."""
        self.deaths[w] += 1
        log.debug("worker %d (pid %d) died: %s", w, self.summary.workers[w].pid, _message(exc))
        if self.deaths[w] <= MAX_RESTARTS:
            self.inflight[self.actors[w].info.remote()] = (w, None, None, 0)

    def _fail(self, video: _Video, message: str) -> None:
        if video.failed:
            return
        video.failed = True
        video.summary.error = message
        self.queue = collections.deque(item for item in self.queue if item[0] is not video)
        missing = sum(s.frames for s in video.plan.segments if s.index not in video.work.done)
        self.emit(BatchEvent("failed", str(video.plan.dst), frames=missing, message=message))
        _finished(video)

    def _mux(self, video: _Video) -> None:
        self.muxing[self.pool.submit(self._finish, video)] = video

    def _finish(self, video: _Video) -> float:
        """Concatenate and mux (in the mux thread); returns the seconds it took."""
        began = time.perf_counter()
        finish_transcode(video.plan, video.work, video.summary, self.overwrite)
        return time.perf_counter() - began

    def _muxed(self, future: concurrent.futures.Future) -> None:
        video = self.muxing.pop(future)
        if future.exception() is not None:
            self._fail(video, _message(future.exception()))
            return
        began = video.began or time.perf_counter()
        video.summary.seconds = time.perf_counter() - began
        new = video.summary.frames - video.summary.resumed_frames
        video.summary.fps = new / video.summary.seconds if video.summary.seconds else 0.0
        self.emit(BatchEvent("video", str(video.plan.dst), frames=video.summary.frames, seconds=future.result()))
        _finished(video)


def _finished(video: _Video) -> None:
    video.finished = True
    get_host().call("job_finished", job=video.plan.job, summary=video.summary)


def batch_transcode(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, scale: int = 2,
                    model: Any = "idsa-net-s", weights: str | os.PathLike | None = None, *, ext: str | None = None,
                    ray_address: str | None = None, workers: int | None = None, threads: int = 1,
                    segment_seconds: float | None = None, segment_frames: int = DEFAULT_SEGMENT_FRAMES,
                    codec: str = DEFAULT_CODEC, crf: int | None = None, preset: str | None = None,
                    pix_fmt: str | None = None, encoder_options: dict[str, str] | None = None, device: str | None = None,
                    dtype: str | None = None, batch: int | None = None, tile: Any = None, overlap: int | None = None,
                    pre: Sequence[Any] | None = None, post: Sequence[Any] | None = None, start: float | None = None,
                    duration: float | None = None, frames: int | None = None, overwrite: bool = False,
                    on_error: str = "fail", progress: bool = False, backend: str = "torch", compile: bool = False,
                    on_event: Callable[[BatchEvent], None] | None = None) -> BatchSummary:
    """Upscale every video of ``inputs`` (files, or folders searched for video files) into ``out_dir``.

    The encoding, selection and model options are those of :func:`~idsa_plugin.filters.pyav.transcode`,
    applied to each video. ``ray_address`` joins a running cluster (e.g. "auto" or "HOST:6379");
    without it a local Ray runtime starts here (and stops at the end) unless Ray is already
    initialised in this process. ``workers`` defaults to one per GPU in the cluster, else one per
    ``threads`` CPUs. ``segment_seconds`` (or ``segment_frames``) is the unit of work. ``on_event``
    receives every :class:`BatchEvent`. A video that fails is reported in its summary's ``error``
    and does not stop the others. Returns a :class:`BatchSummary`.
    """
    try:
        import ray
    except ImportError:
        raise TranscodeError(RAY_MISSING) from None
    if threads < 1:
        raise TranscodeError(f"threads must be at least 1, not {threads}")
    began = time.perf_counter()
    summary = BatchSummary()
    plan_options = {"codec": codec, "crf": crf, "preset": preset, "pix_fmt": pix_fmt, "encoder_options": encoder_options,
                    "start": start, "duration": duration, "frames": frames, "on_error": on_error,
                    "segment_frames": segment_frames, "segment_seconds": segment_seconds}
    videos: list[_Video] = []
    for src, dst in targets(inputs, out_dir, ext):
        if dst.exists() and not overwrite:
            summary.skipped.append(str(dst))
            continue
        try:
            plan = plan_transcode(src, dst, scale, model, overwrite=overwrite, **plan_options)
        except (TranscodeError, OSError) as exc:
            summary.videos.append(TranscodeSummary(str(src), str(dst), error=_message(exc)))
            continue
        videos.append(_Video(plan, plan.summary()))
        summary.videos.append(videos[-1].summary)
    if not videos:
        return summary
    started = _connect(ray_address, max(os.cpu_count() or 1, (workers or 0) * threads))
    actors: list[Any] = []
    bar: _Progress | None = None
    try:
        engine_options = {"scale": scale, "weights": weights, "device": device, "dtype": dtype, "batch": batch,
                          "tile": tile, "overlap": overlap, "pre": pre, "post": post, "backend": backend, "compile": compile}
        actors, summary.workers = _start_workers(workers, threads, device, model, engine_options)
        keys = ray.get(actors[0].fingerprints.remote([(str(v.plan.src.resolve()), v.plan.job.settings) for v in videos]))
        for video, key in zip(videos, keys):
            _open_work(video, key, on_error)
            summary.resumed_segments += len(video.plan.segments) - video.remaining
        bar = _Progress(len(videos), sum(len(v.plan.segments) for v in videos), sum(v.plan.job.frames for v in videos),
                        summary.resumed_segments, sum(v.summary.resumed_frames for v in videos), progress)

        def emit(event: BatchEvent) -> None:
            bar(event)
            if on_event is not None:
                on_event(event)

        for w, info in enumerate(summary.workers):
            emit(BatchEvent("worker", worker=w, pid=info.pid))
        _Driver(actors, videos, summary, overwrite, emit).run()
    except BaseException as exc:
        for video in videos:
            if video.work is not None and not video.finished:
                video.summary.error = _message(exc) or type(exc).__name__
                _finished(video)
        raise
    finally:
        if bar is not None:
            bar.close()
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
        summary.seconds = time.perf_counter() - began
        summary.fps = summary.frames / summary.seconds if summary.seconds else 0.0
    return summary


def _start_workers(workers: int | None, threads: int, device: str | None, model: Any,
                   engine_options: dict[str, Any]) -> tuple[list[Any], list[WorkerInfo]]:
    """Start the actors and wait until each has loaded the model."""
    import ray

    count, options = _worker_options(workers, threads, device)
    worker_class = ray.remote(SegmentWorker)
    actors = [worker_class.options(**options).remote(model, engine_options, threads) for _ in range(count)]
    try:
        infos = ray.get([a.info.remote() for a in actors])
        broken = next((info for info in infos if info.error), None)
        if broken is not None:
            raise TranscodeError(f"a worker (pid {broken.pid} on {broken.host}) could not load the model: {broken.error}")
    except BaseException:
        for actor in actors:
            ray.kill(actor)
        raise
    return actors, infos


def _open_work(video: _Video, key: str, on_error: str) -> None:
    """Open the video's resumable work folder (finished segments count as done) and publish its task."""
    import ray

    plan = video.plan
    video.work = WorkDir(plan.dst, key, resume=True)
    token = secrets.token_hex(16)
    (video.work.path / TOKEN_FILE).write_text(token)
    video.task = ray.put(VideoTask(str(plan.src.resolve()), plan.source, plan.video, plan.index_start, on_error,
                                   str(video.work.path.resolve()), token))
    video.summary.resumed_frames = sum(r.frames for r in video.work.done.values())
    video.remaining = sum(1 for s in plan.segments if s.index not in video.work.done)
    get_host().call("job_started", job=plan.job)
