"""What travels between the driver and the workers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..pyav import SegmentResult, SourceVideo, VideoPlan


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
    """A worker's process, host and device, or why it could not load the model; ``engine``: its resolved settings."""

    pid: int
    host: str
    device: str
    error: str | None = None
    engine: dict[str, Any] = field(default_factory=dict)
