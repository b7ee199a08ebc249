"""Upscale a video from Python with ``transcode`` and watch the job through the plugin hooks.

    .venv/bin/python examples/transcode_api.py [IN] [OUT]

IN defaults to the Big Buck Bunny clip of the shared data (../shared/data or $IDSA_DATA); OUT to
out/api_x2.mkv. Only the first 3 frames are upscaled: a 480p frame takes seconds on a CPU.
"""
from __future__ import annotations

import sys
from pathlib import Path

from idsa_plugin import hookimpl
from idsa_plugin.evaluate import data_root
from idsa_plugin.filters.pyav import TranscodeError, transcode
from idsa_plugin.plugins import get_host


class Monitor:
    """A plugin: prints each job's start, its progress per batch and its summary."""

    def __init__(self) -> None:
        self.done = 0

    @hookimpl
    def job_started(self, job):
        print(f"started: {job.source} -> {job.output} ({job.frames} frames, {job.settings['video']['codec']})")

    @hookimpl
    def batch_done(self, job, frames):
        self.done += frames
        print(f"  upscaled {self.done}/{job.frames}")

    @hookimpl
    def job_finished(self, job, summary):
        print(f"finished: {summary.error or summary.line()}")


def main() -> int:
    root = data_root()
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else (root / "video" / "bbb_480p_5s.mp4" if root else None)
    if src is None:
        print("give a video: no shared data folder found", file=sys.stderr)
        return 2
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("out/api_x2.mkv")
    get_host().manager.register(Monitor(), name="example-monitor")
    try:
        summary = transcode(src, dst, scale=2, model="idsa-net-s", frames=3, codec="libx264", crf=18, overwrite=True)
    except TranscodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{summary.frames} frames, other streams: {summary.streams}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
