"""What a batch reports as it goes (events, one progress bar) and when it ends (its summary)."""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from ..pyav import TranscodeSummary
from .tasks import WorkerInfo


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


class Progress:
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
