"""Our engine (torch, CPU, float32) against vs-mlrt's onnxruntime and OpenVINO runtimes on the same model.

    .venv/bin/python benchmarks/bench_vsmlrt.py [--frames 30] [--size 320x180] [--repeats 3] [--threads N]

Frames: the first ``--frames`` of the Big Buck Bunny 480p clip of the shared data, resized to
``--size`` as RGBS and held in memory, so decoding is not timed. The model (shipped weights
unless ``--weights``) is exported once to a dynamic-shape ONNX file that every ONNX runner uses.
Runners, all with ``--threads`` threads:

- ``engine``: ``Engine.stream`` on planar float32 frames (torch eager, float32);
- ``idsa filter``: our VapourSynth ``upscale()`` with its defaults on the RGBS clip, once with 8-bit
  output (``output_format=RGB24``: the automatic precision is bf16 where the CPU accelerates it) and
  once with float output (RGBS: float32), frames requested in order like vs-mlrt's;
- ``vs-mlrt ort`` / ``vs-mlrt ov``: ``core.ort.Model`` / ``core.ov.Model`` through VapourSynth
  (frames requested in order with prefetch, one inference stream); ov in f32 and in OpenVINO's
  default precision (bf16 on CPUs with AVX512-BF16 or AMX);
- ``backend openvino``: ``idsa_plugin.backends.OpenVINOModel`` in f32 and bf16 on (1, 3, H, W) tensors.

Each runner runs ``--repeats`` times round-robin (the machine's load varies) and its best pass
counts, for wall-clock speed and for CPU seconds of this process per frame (all its threads; less
moved by other processes); the first frame of a pass is a warm-up (sessions, OpenVINO
compilation) and is not timed. ``levels``: max abs difference to the engine's output on that
first frame, in 8-bit levels.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import openvino  # noqa: F401 - before the VapourSynth core, so vs-mlrt's ov plugin shares its runtime
import torch
import vapoursynth as vs

from idsa_plugin.backends import OpenVINOModel
from idsa_plugin.engine import Engine
from idsa_plugin.evaluate import data_root
from idsa_plugin.export import export_onnx
from idsa_plugin.filters.vapoursynth import upscale
from idsa_plugin.models import load_model

Runner = Callable[[], Iterator[np.ndarray]]  # one pass: the upscaled frames, planar float32, in order


def source_frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """The first ``count`` frames of the 480p test clip as planar float32 RGB of ``width`` x ``height``."""
    root = data_root()
    if root is None:
        raise SystemExit("shared data not found: set IDSA_DATA or place it at ../shared/data")
    clip = vs.core.bs.VideoSource(str(root / "video" / "bbb_480p_5s.mp4"))[:count]
    clip = clip.resize.Bicubic(width, height, format=vs.RGBS, matrix_in_s="170m")
    return [np.stack([np.array(f[p]) for p in range(3)]) for f in clip.frames()]


def memory_clip(frames: list[np.ndarray]) -> vs.VideoNode:
    """An RGBS clip serving ``frames`` from memory."""
    _, height, width = frames[0].shape
    blank = vs.core.std.BlankClip(width=width, height=height, format=vs.RGBS, length=len(frames))

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.asarray(out[p])[...] = frames[n][p]
        return out

    return vs.core.std.ModifyFrame(blank, blank, fill)


def runners(frames: list[np.ndarray], onnx_path: Path, model: torch.nn.Module, threads: int) -> dict[str, Runner]:
    core = vs.core
    clip = memory_clip(frames)
    engine = Engine(model, device="cpu", dtype="float32", tile=0)
    f32 = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    backends = {f"backend openvino {p}": OpenVINOModel(model, threads, precision=p) for p in ("f32", "bf16")}

    def vs_runner(make: Callable[[], vs.VideoNode], peak: float = 1.0) -> Runner:
        return lambda: (np.stack([np.asarray(f[p]) for p in range(3)]).astype(np.float32) / peak for f in make().frames())

    def backend_runner(run: Callable[[torch.Tensor], torch.Tensor]) -> Runner:
        return lambda: (run(torch.from_numpy(f)[None])[0].numpy() for f in frames)

    table: dict[str, Runner] = {
        "engine (torch)": lambda: (f.image for f in engine.stream(frames, planar=True)),
        "idsa filter, 8-bit out": vs_runner(lambda: upscale(clip, 2, model, output_format=vs.RGB24), peak=255.0),
        "idsa filter, float out": vs_runner(lambda: upscale(clip, 2, model)),
        "vs-mlrt ort": vs_runner(lambda: core.ort.Model(clip, network_path=str(onnx_path), provider="CPU", num_streams=1)),
        "vs-mlrt ov f32": vs_runner(lambda: core.ov.Model(clip, network_path=str(onnx_path), device="CPU", num_streams=1,
                                                          config=lambda: f32)),
        "vs-mlrt ov default": vs_runner(lambda: core.ov.Model(clip, network_path=str(onnx_path), device="CPU", num_streams=1,
                                                              config=lambda: {"INFERENCE_NUM_THREADS": threads})),
    }
    table.update({name: backend_runner(run) for name, run in backends.items()})
    return table


def timed_pass(run: Runner) -> tuple[float, float, np.ndarray]:
    """(frames per second, CPU seconds of this process per frame, both after the first frame; the first frame)."""
    frames = run()
    first = next(frames)
    start, cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in frames)
    return count / (time.perf_counter() - start), (time.process_time() - cpu) / count, first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="idsa-net-s")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--weights", help="weights file (default: the shipped weights)")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="320x180", help="input WxH")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(args.threads)
    vs.core.num_threads = args.threads

    model = load_model(args.model, scale=args.scale, weights=args.weights, device="cpu", dtype="float32")
    frames = source_frames(args.frames, width, height)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, onnx_path)
        table = runners(frames, onnx_path, model, args.threads)
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        firsts: dict[str, np.ndarray] = {}
        for r in range(args.repeats):
            for name, run in table.items():
                fps, seconds, firsts[name] = timed_pass(run)
                best[name] = max(best.get(name, 0.0), fps)
                cpu[name] = min(cpu.get(name, float("inf")), seconds)
                print(f"pass {r + 1}: {name:<22} {fps:6.3f} fps {seconds:6.3f} CPU s/frame", file=sys.stderr, flush=True)

    reference = firsts["engine (torch)"]
    step = model.idsa_info.metadata.get("steps", "?")
    print(f"{args.model} x{args.scale} (weights at step {step}), {args.frames} frames {width}x{height} -> "
          f"{width * args.scale}x{height * args.scale}, {args.threads} threads, best of {args.repeats}")
    print("| runner | fps | x engine | CPU s/frame | x engine (CPU) | levels |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    engine_fps, engine_cpu = best["engine (torch)"], cpu["engine (torch)"]
    for name, fps in best.items():
        levels = float(np.abs(np.clip(firsts[name], 0, 1) - reference).max()) * 255
        print(f"| {name} | {fps:.3f} | {fps / engine_fps:.2f} | {cpu[name]:.2f} | {engine_cpu / cpu[name]:.2f} | {levels:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
