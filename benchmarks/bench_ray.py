"""``batch_transcode`` on a local Ray runtime: 1 vs 2 CPU workers, scaling efficiency and per-segment costs.

    .venv/bin/python benchmarks/bench_ray.py [--size 128x72] [--seconds 3 1 1] [--segment-seconds 0.5] [--repeats 2]

The library: one clip per ``--seconds`` value, the shared Big Buck Bunny clip scaled to ``--size``
(H.264 + AAC, 24 fps), upscaled x2 by idsa-net-s into libx264 (CRF 18). Each run starts its workers
afresh (model loading included in "wall") on a Ray runtime started once here with as many CPUs as
the machine has; runs with 1 and 2 workers alternate ``--repeats`` times and the best of each counts.
"steady fps" counts from the first segment sent to the last output written, so it leaves out
worker start-up. "cores obtained" is worker CPU seconds per wall second: on a shared machine it
shows how much CPU the workers actually got; CPU seconds per frame, which other load moves much
less than wall time, is what scaling costs per frame. Per-segment costs come from the workers' own
timings (``BatchEvent.seconds``, ``cpu_seconds``), the mux from the driver's mux thread
(``BatchEvent.seconds`` of "video"), the dispatch round trip from 200 calls to an idle actor. A
last run with 1 worker and half the segment length gives the fixed CPU cost of a segment (seek and
decode from a keyframe, encoder and pipeline start-up).
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import ray

from bench_transcode import make_clip
from idsa_plugin.evaluate import data_root
from idsa_plugin.filters.pyav import plan_transcode
from idsa_plugin.filters.ray_batch import BatchEvent, batch_transcode


@ray.remote(num_cpus=0)
class Idle:
    def ping(self) -> None:
        return None


def round_trip() -> float:
    """Seconds per call to an idle actor, driver to worker and back (sequential)."""
    actor = Idle.remote()
    ray.get(actor.ping.remote())
    began = time.perf_counter()
    for _ in range(200):
        ray.get(actor.ping.remote())
    seconds = (time.perf_counter() - began) / 200
    ray.kill(actor)
    return seconds


def run(inputs: list[Path], workers: int, segment_seconds: float, out: Path) -> dict[str, float]:
    """One batch into a fresh folder; its timings from the events."""
    events: list[tuple[float, BatchEvent]] = []
    began = time.perf_counter()
    summary = batch_transcode(inputs, out, workers=workers, segment_seconds=segment_seconds,
                              on_event=lambda e: events.append((time.perf_counter(), e)))
    assert not summary.failed, summary.failed
    first = min(t for t, e in events if e.kind == "dispatch")
    last = max(t for t, e in events if e.kind == "video")
    segments = [e for _, e in events if e.kind == "segment"]
    return {"wall": summary.seconds, "startup": first - began, "steady_fps": summary.frames / (last - first),
            "frames": summary.frames, "segments": summary.segments,
            "segment_s": statistics.mean(e.seconds for e in segments),
            "segment_frames": statistics.mean(e.frames for e in segments),
            "worker_s_per_frame": sum(e.seconds for e in segments) / summary.frames,
            "worker_cpu_s_per_frame": sum(e.cpu_seconds for e in segments) / summary.frames,
            "mux_s_per_frame": sum(e.seconds for _, e in events if e.kind == "video") / summary.frames,
            "bytes": sum(v.bytes for v in summary.videos)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128x72", help="frame size of the clips")
    parser.add_argument("--seconds", type=float, nargs="+", default=[3.0, 1.0, 1.0], help="length of each clip")
    parser.add_argument("--segment-seconds", type=float, default=0.5, help="the unit of work")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the best counts")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before the runs")
    root = data_root()
    if root is None:
        raise SystemExit("shared data not found: set IDSA_DATA or place it at ../shared/data")
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = []
        for i, seconds in enumerate(args.seconds):
            inputs.append(work / f"clip{i}.mp4")
            make_clip(root / "video" / "bbb_480p_5s.mp4", inputs[-1], size, seconds)
        began = time.perf_counter()
        for clip in inputs:
            plan_transcode(clip, work / "planned.mkv")
        planning = (time.perf_counter() - began) / len(inputs)
        began = time.perf_counter()
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
        ray_start = time.perf_counter() - began
        rtt = round_trip()
        best: dict[int, dict[str, float]] = {}
        for repeat in range(args.repeats):
            for workers in (1, 2):
                result = run(inputs, workers, args.segment_seconds, work / f"out-{workers}-{repeat}")
                print(f"{workers} workers: " + ", ".join(f"{k} {v:.3g}" for k, v in result.items()), flush=True)
                if workers not in best or result["steady_fps"] > best[workers]["steady_fps"]:
                    best[workers] = result
        halved = run(inputs, 1, args.segment_seconds / 2, work / "out-halved")
        ray.shutdown()
    one, two = best[1], best[2]
    cpu = {r["segments"]: r["worker_cpu_s_per_frame"] * r["frames"] for r in (one, halved)}
    fixed = (cpu[halved["segments"]] - cpu[one["segments"]]) / (halved["segments"] - one["segments"])
    print(f"\nlibrary: {len(inputs)} clips, {one['frames']} frames of {args.size} -> x2, {one['segments']} segments "
          f"of {one['segment_frames']:.1f} frames; best of {args.repeats}")
    print("| workers | wall s | start-up s | steady fps | worker s/segment | worker s/frame | worker CPU s/frame | cores obtained | mux ms/frame |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, r in ((1, one), (2, two)):
        print(f"| {n} | {r['wall']:.1f} | {r['startup']:.1f} | {r['steady_fps']:.2f} | {r['segment_s']:.2f} | "
              f"{r['worker_s_per_frame']:.3f} | {r['worker_cpu_s_per_frame']:.3f} | {r['worker_cpu_s_per_frame'] * r['steady_fps']:.2f} | {r['mux_s_per_frame'] * 1000:.2f} |")
    print(f"scaling efficiency (steady fps 2 / (2 x 1)): {two['steady_fps'] / (2 * one['steady_fps']):.2f}; "
          f"wall: {one['wall'] / (2 * two['wall']):.2f}; per CPU second (worker CPU s/frame 1 / 2): "
          f"{one['worker_cpu_s_per_frame'] / two['worker_cpu_s_per_frame']:.2f}")
    print(f"ray.init {ray_start:.1f} s; planning (probe + index) {planning * 1000:.0f} ms/video; "
          f"dispatch round trip {rtt * 1000:.2f} ms; output {one['bytes'] / one['frames'] / 1000:.1f} kB/frame")
    print(f"fixed worker CPU per segment (1 worker, {halved['segments']} vs {one['segments']} segments): {fixed:.2f} s "
          f"= {fixed / (one['worker_cpu_s_per_frame']):.1f} frames' worth")


if __name__ == "__main__":
    main()
