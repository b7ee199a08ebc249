"""The work folder of a transcode: segment files and the resume state, keyed by a fingerprint."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .segments import SegmentResult

if TYPE_CHECKING:
    from idsa_plugin.engine import Engine

log = logging.getLogger("idsa_plugin")

STATE_VERSION = 1


class WorkDir:
    """Segment files and the resume state of one transcode, in a folder beside the target.

    Resumable folders are named ``.NAME.resume``; others are temporary and always removed.
    """

    def __init__(self, target: Path, fingerprint: str, resume: bool) -> None:
        self.fingerprint, self.resume = fingerprint, resume
        if resume:
            self.path = target.parent / f".{target.name}.resume"
            self.path.mkdir(parents=True, exist_ok=True)
        else:
            self.path = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".segments", dir=target.parent))
        self.state_file = self.path / "state.json"
        self.done: dict[int, SegmentResult] = {}
        if resume and self.state_file.exists():
            state = json.loads(self.state_file.read_text())
            if state.get("version") == STATE_VERSION and state.get("fingerprint") == fingerprint:
                self.done = {r["index"]: SegmentResult(**r) for r in state["segments"]
                             if r["file"] is None or (self.path / r["file"]).is_file()}
            else:
                log.warning("%s: the resume state is for other settings or another source: starting over", target)
                shutil.rmtree(self.path)
                self.path.mkdir()

    def record(self, result: SegmentResult) -> None:
        """Note a finished segment (atomically rewrites the state file)."""
        self.done[result.index] = result
        if not self.resume:
            return
        state = {"version": STATE_VERSION, "fingerprint": self.fingerprint,
                 "segments": [asdict(r) for _, r in sorted(self.done.items())]}
        part = self.state_file.with_suffix(".part")
        part.write_text(json.dumps(state, indent=1))
        os.replace(part, self.state_file)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def fingerprint(src: Path, settings: dict[str, Any], engine: Engine) -> str:
    """Identifies what a resume state belongs to: the source file, the settings, the model and how the engine runs it.

    The engine part is every :class:`~idsa_plugin.engine.EngineOptions` value plus what they resolved to
    here (device, precision), so segments made with another backend, compile setting or precision never mix.
    """
    info = getattr(engine.model, "idsa_info", None)
    weights = Path(info.weights) if info is not None and info.weights else None
    resolved = engine.describe()
    model = {"name": info.name if info else type(engine.model).__name__, "weights": str(weights),
             "weights_stat": [weights.stat().st_size, weights.stat().st_mtime_ns] if weights and weights.exists() else None,
             "scale": engine.scale, "options": engine.options.fingerprint(),
             "device": engine.device.type, "dtype": resolved["dtype"]}
    stat = src.stat()
    identity = [str(src.resolve()), stat.st_size, stat.st_mtime_ns, settings, model]
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
