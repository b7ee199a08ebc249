"""``transcode`` against the bare engine, and its peak memory over video length.

    .venv/bin/python benchmarks/bench_transcode.py [--size 128x72] [--seconds 2] [--repeats 3] [--memory-size 64x36]

Clips: the Big Buck Bunny clip of the shared data scaled down to ``--size`` (looped as needed),
H.264 at 24 fps, with a stereo AAC track.
Speed: the clip goes once through ``transcode`` (decoding thread, engine, encoding thread, segment
concatenation, muxing the audio) and once, decoded beforehand to rgb24 arrays, straight through
``Engine.stream``; same model and engine settings, model loading excluded, after a warm-up frame
in this process; the two alternate ``--repeats`` times and the best of each counts. transcode fps /
engine fps is the pipeline's efficiency. Other load on a small machine moves single runs a lot, so
CPU seconds per frame (this process, all threads; for transcode from ``job_started`` to
``job_finished``) are printed too.
Memory: peak RSS of ``idsa-sr transcode`` processes on 1 s and 10 s clips of ``--memory-size``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from idsa_plugin import hookimpl
from idsa_plugin.engine import Engine
from idsa_plugin.evaluate import data_root
from idsa_plugin.filters.pyav import transcode
from idsa_plugin.plugins import get_host


class CpuClock:
    """A plugin that takes this process's CPU time when a job starts and when it finishes."""

    def __init__(self) -> None:
        self.started = self.seconds = 0.0

    @hookimpl
    def job_started(self, job):
        self.started = time.process_time()

    @hookimpl
    def job_finished(self, job, summary):
        self.seconds = time.process_time() - self.started


def make_clip(src: Path, dst: Path, size: tuple[int, int], seconds: float) -> list[np.ndarray]:
    """Write ``seconds`` of ``src`` scaled to ``size`` (H.264 + AAC) and return its frames as decoded rgb24."""
    frames = int(seconds * 24)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        video = out.add_stream("libx264", rate=24, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        pictures = [f.reformat(*size, "yuv420p") for _, f in zip(range(frames), inp.decode(video=0))]
        for i in range(frames):
            picture = pictures[i % len(pictures)]
            picture.pts, picture.time_base = i, Fraction(1, 24)
            out.mux(video.encode(picture))
        out.mux(video.encode())
        for start in range(0, int(seconds * 48000), 1024):
            wave = np.sin(2 * np.pi * 440 * np.arange(start, start + 1024) / 48000).astype(np.float32) * 0.3
            chunk = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = 48000, start
            out.mux(audio.encode(chunk))
        out.mux(audio.encode())
    with av.open(str(dst)) as clip:
        return [f.to_ndarray(format="rgb24") for f in clip.decode(video=0)]


def engine_run(arrays: list[np.ndarray]) -> tuple[float, float]:
    """(frames per second, CPU seconds per frame) of ``Engine.stream`` over ``arrays``."""
    engine = Engine("idsa-net-s", scale=2)
    began, cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in engine.stream(arrays))
    return count / (time.perf_counter() - began), (time.process_time() - cpu) / count


def peak_rss(src: Path, dst: Path) -> int:
    """Peak RSS in bytes of an ``idsa-sr transcode`` process."""
    command = [sys.executable, "-m", "idsa_plugin.cli", "transcode", str(src), str(dst), "--quiet", "--overwrite"]
    with subprocess.Popen(command, stderr=subprocess.PIPE) as proc:
        stderr = proc.stderr.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"transcode failed ({proc.returncode}):\n{stderr[-2000:]}")
    return usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128x72", help="frame size for the speed runs")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length for the speed runs")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the best counts")
    parser.add_argument("--memory-size", default="64x36", help="frame size for the memory runs (1 s and 10 s)")
    args = parser.parse_args()
    root = data_root()
    if root is None:
        raise SystemExit("shared data not found: set IDSA_DATA or place it at ../shared/data")
    bbb = root / "video" / "bbb_480p_5s.mp4"
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        arrays = make_clip(bbb, work / "speed.mp4", size, args.seconds)
        Engine("idsa-net-s", scale=2).upscale(arrays[0])  # warm-up: first-call kernel selection, once per process
        clock = CpuClock()
        get_host().manager.register(clock, name="bench-cpu-clock")
        bare = piped = 0.0
        bare_cpu = piped_cpu = float("inf")
        for _ in range(args.repeats):
            fps, cpu = engine_run(arrays)
            bare, bare_cpu = max(bare, fps), min(bare_cpu, cpu)
            summary = transcode(work / "speed.mp4", work / "speed_x2.mkv", overwrite=True)
            piped, piped_cpu = max(piped, summary.frames / summary.seconds), min(piped_cpu, clock.seconds / summary.frames)
        print(f"speed, {len(arrays)} frames of {args.size} -> x2, best of {args.repeats}: engine {bare:.2f} fps, "
              f"transcode {piped:.2f} fps, ratio {piped / bare:.2f}; CPU s/frame: engine {bare_cpu:.3f}, "
              f"transcode {piped_cpu:.3f}, ratio {bare_cpu / piped_cpu:.2f}")
        memory_size = tuple(int(v) for v in args.memory_size.split("x"))
        rss = {}
        for seconds in (1, 10):
            make_clip(bbb, work / f"memory_{seconds}s.mp4", memory_size, seconds)
            rss[seconds] = peak_rss(work / f"memory_{seconds}s.mp4", work / f"memory_{seconds}s_x2.mkv")
        print(f"peak RSS, {args.memory_size} -> x2: 1 s {rss[1] / 2**20:.0f} MiB, 10 s {rss[10] / 2**20:.0f} MiB, "
              f"ratio {rss[10] / rss[1]:.2f}")


if __name__ == "__main__":
    main()
