"""The Ray actor: holds the model, encodes one segment per call."""
from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..pyav import Segment, encode_segments, fingerprint, message
from .tasks import SegmentDone, VideoTask, WorkerInfo

if TYPE_CHECKING:
    from idsa_plugin.engine import Engine

TOKEN_FILE = "ray-token"


class SegmentWorker:
    """Loads the model once, then encodes one segment per call.

    ``engine`` holds the :class:`~idsa_plugin.engine.Engine` keywords (``scale``, ``weights``, ``options``
    or single options). The worker keeps one engine per output depth: the automatic precision depends on it.
    """

    def __init__(self, model: Any, engine: dict[str, Any], threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.model, self.engine_keywords = model, dict(engine)
        self.engines: dict[int, Engine] = {}
        self.error: str | None = None
        try:
            self.engine_for(8)
        except Exception as exc:  # noqa: BLE001 - reported by info(), in one line
            self.error = message(exc)

    def engine_for(self, output_bits: int) -> Engine:
        """The engine for videos of ``output_bits`` per sample."""
        if output_bits not in self.engines:
            from idsa_plugin.engine import Engine

            self.engines[output_bits] = Engine(self.model, output_bits=output_bits, **self.engine_keywords)
        return self.engines[output_bits]

    def info(self) -> WorkerInfo:
        engine = self.engines.get(8)
        if engine is None:
            return WorkerInfo(os.getpid(), socket.gethostname(), "", self.error)
        return WorkerInfo(os.getpid(), socket.gethostname(), str(engine.device), None, engine.describe())

    def fingerprints(self, jobs: list[tuple[str, dict[str, Any], int]]) -> list[tuple[str, dict[str, Any]]]:
        """For each (source, settings, output bits): the resume-state fingerprint with this worker's model and
        device, and the resolved settings of the engine that encodes it."""
        return [(fingerprint(Path(src), settings, self.engine_for(bits)), self.engine_for(bits).describe())
                for src, settings, bits in jobs]

    def encode(self, task: VideoTask, segment: Segment) -> SegmentDone:
        began, cpu = time.perf_counter(), time.process_time()
        work = Path(task.work_dir)
        with contextlib.ExitStack() as stack:
            shared = _reads(work / TOKEN_FILE, task.token)
            folder = work if shared else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="idsa-segment-")))
            (result,) = encode_segments(task.src, [segment], task.source, task.video, self.engine_for(task.video.bits),
                                        folder, task.index_start, task.on_error)
            data = None if shared or result.file is None else (folder / result.file).read_bytes()
        return SegmentDone(result, data, time.perf_counter() - began, time.process_time() - cpu, os.getpid())


def _reads(path: Path, token: str) -> bool:
    try:
        return path.read_text() == token
    except OSError:
        return False
