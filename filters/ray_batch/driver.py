"""The driver: feeds segments to idle workers, re-queues those of dead workers, muxes finished videos."""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from idsa_plugin.plugins import get_host

from ..pyav import Segment, TranscodeError, TranscodePlan, TranscodeSummary, WorkDir, finish_transcode, message
from .cluster import MAX_RESTARTS
from .events import BatchEvent, BatchSummary
from .tasks import SegmentDone, VideoTask, WorkerInfo
from .worker import TOKEN_FILE

log = logging.getLogger("idsa_plugin")

MAX_ATTEMPTS = 3  # per segment


@dataclass(eq=False)
class Video:
    """One video in flight on the driver."""

    plan: TranscodePlan
    summary: TranscodeSummary
    work: WorkDir | None = None
    task: Any = None  # ObjectRef of its VideoTask
    remaining: int = 0  # segments not yet done
    began: float = 0.0
    failed: bool = False
    finished: bool = False  # job_finished was called


class Driver:
    """Feeds segments to idle workers, re-queues those of dead workers, muxes finished videos."""

    def __init__(self, actors: list[Any], videos: list[Video], summary: BatchSummary, overwrite: bool,
                 emit: Callable[[BatchEvent], None]) -> None:
        import ray

        self.ray, self.actors, self.summary, self.overwrite, self.emit = ray, actors, summary, overwrite, emit
        self.queue: collections.deque[tuple[Video, Segment, int]] = collections.deque(
            (v, s, 1) for v in videos for s in v.plan.segments if s.index not in v.work.done)
        self.idle = collections.deque(range(len(actors)))
        self.inflight: dict[Any, tuple[int, Video | None, Segment | None, int]] = {}  # ref -> worker, video, segment, attempt
        self.deaths = [0] * len(actors)
        self.muxing: dict[concurrent.futures.Future, Video] = {}
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
            if video is None:
                self._rejoin_failed(w, exc)
            else:
                self._worker_lost(w, exc)
                self._retry(w, video, segment, attempt, exc)
            return
        except self.ray.exceptions.RayTaskError as exc:  # the call itself raised
            reason = message(exc.cause if exc.cause is not None else exc)
            if video is None:
                log.warning("worker %d restarted but cannot answer: %s; going on without it", w, reason)
            else:
                self.idle.append(w)
                self._fail(video, reason)
            return
        if video is None:
            self._rejoined(w, answer)
        else:
            self.idle.append(w)
            self._segment_done(w, video, segment, answer)

    def _retry(self, w: int, video: Video, segment: Segment, attempt: int, exc: BaseException) -> None:
        """Queue the segment of a dead worker again (first in line), or fail its video after ``MAX_ATTEMPTS``."""
        if video.failed:
            return
        self.summary.retries += 1
        self.emit(BatchEvent("retry", str(video.plan.dst), segment.index, segment.frames, w, message=message(exc)))
        if attempt >= MAX_ATTEMPTS:
            self._fail(video, f"segment {segment.index} lost its worker {attempt} times ({message(exc)})")
        else:
            self.queue.appendleft((video, segment, attempt + 1))

    def _rejoined(self, w: int, info: WorkerInfo) -> None:
        """A worker answered after a restart: back to work, unless it could not load the model."""
        self.summary.workers[w] = info
        if info.error:
            log.warning("worker %d (pid %d on %s) restarted but could not load the model: %s", w, info.pid, info.host, info.error)
            return
        self.idle.append(w)
        self.emit(BatchEvent("worker", worker=w, pid=info.pid))

    def _rejoin_failed(self, w: int, exc: BaseException) -> None:
        """Asking a restarted worker failed: still restarting (ask again), or dead again."""
        if isinstance(exc, self.ray.exceptions.ActorUnavailableError):
            self.inflight[self.actors[w].info.remote()] = (w, None, None, 0)
        else:
            self._worker_lost(w, exc)

    def _segment_done(self, w: int, video: Video, segment: Segment, answer: SegmentDone) -> None:
        """Store a finished segment (its bytes, when the worker sent them) and mux the video once complete."""
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
        log.debug("worker %d (pid %d) died: %s", w, self.summary.workers[w].pid, message(exc))
        if self.deaths[w] <= MAX_RESTARTS:
            self.inflight[self.actors[w].info.remote()] = (w, None, None, 0)

    def _fail(self, video: Video, reason: str) -> None:
        if video.failed:
            return
        video.failed = True
        video.summary.error = reason
        self.queue = collections.deque(item for item in self.queue if item[0] is not video)
        missing = sum(s.frames for s in video.plan.segments if s.index not in video.work.done)
        self.emit(BatchEvent("failed", str(video.plan.dst), frames=missing, message=reason))
        finished(video)

    def _mux(self, video: Video) -> None:
        self.muxing[self.pool.submit(self._finish, video)] = video

    def _finish(self, video: Video) -> float:
        """Concatenate and mux (in the mux thread); returns the seconds it took."""
        began = time.perf_counter()
        finish_transcode(video.plan, video.work, video.summary, self.overwrite)
        return time.perf_counter() - began

    def _muxed(self, future: concurrent.futures.Future) -> None:
        video = self.muxing.pop(future)
        if future.exception() is not None:
            self._fail(video, message(future.exception()))
            return
        began = video.began or time.perf_counter()
        video.summary.seconds = time.perf_counter() - began
        new = video.summary.frames - video.summary.resumed_frames
        video.summary.fps = new / video.summary.seconds if video.summary.seconds else 0.0
        self.emit(BatchEvent("video", str(video.plan.dst), frames=video.summary.frames, seconds=future.result()))
        finished(video)


def finished(video: Video) -> None:
    video.finished = True
    get_host().call("job_finished", job=video.plan.job, summary=video.summary)


def open_work(video: Video, key: str, on_error: str, engine: dict[str, Any]) -> None:
    """Open the video's resumable work folder (finished segments count as done), publish its task and
    start its job (``engine``: a worker's resolved engine settings, for the job and the summary)."""
    import ray

    plan = video.plan
    plan.job.settings["engine"] = video.summary.engine = engine
    video.work = WorkDir(plan.dst, key, resume=True)
    token = secrets.token_hex(16)
    (video.work.path / TOKEN_FILE).write_text(token)
    video.task = ray.put(VideoTask(str(plan.src.resolve()), plan.source, plan.video, plan.index_start, on_error,
                                   str(video.work.path.resolve()), token))
    video.summary.resumed_frames = sum(r.frames for r in video.work.done.values())
    video.remaining = sum(1 for s in plan.segments if s.index not in video.work.done)
    get_host().call("job_started", job=plan.job)
