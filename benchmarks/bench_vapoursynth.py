"""The VapourSynth filter against the bare engine, and the filter's peak memory over clip length.

    .venv/bin/python benchmarks/bench_vapoursynth.py [--frames 60] [--crop 96x64] [--repeats 2] [--threads N]

Speed: the same frames (a centred crop of the Big Buck Bunny clip of the shared data) go once
through ``vspipe -p`` and this file as a script (decode, conversions, filter) and once straight
through ``Engine.stream`` as float32 planar RGB (prepared beforehand), with the same model
and engine settings; both are warmed up on one frame first and the best of ``--repeats`` counts.
CPU seconds per frame (all threads) move much less than wall time when other processes compete; the
filter's come from a run of ``--frames`` frames less a run of one, so start-up cancels out.
Memory: peak RSS of ``vspipe`` for 30 and 300 frames (the clip looped), with the filter and with
bicubic in its place (what VapourSynth and the decoder use by themselves).
Run by vspipe, this file is the script: ``-a src=... -a crop=WxH -a frames=N [-a upscaler=bicubic]``.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import vapoursynth as vs

from idsa_plugin.evaluate import data_root

MATRIX = "170m"  # the clip does not tag its matrix; it is SD


def source(src: str, crop: str, frames: int) -> vs.VideoNode:
    """``frames`` frames of a centred ``crop`` (WxH) of ``src``, looped when the video is shorter."""
    clip = vs.core.bs.VideoSource(src)
    width, height = (int(v) for v in crop.lower().split("x"))
    clip = clip.std.CropAbs(width, height, (clip.width - width) // 4 * 2, (clip.height - height) // 4 * 2)
    return clip.std.Loop(-(-frames // clip.num_frames))[:frames]


if __name__ == "__vapoursynth__":
    from idsa_plugin.filters.vapoursynth import upscale

    clip = source(globals()["src"], globals()["crop"], int(globals()["frames"]))
    if globals().get("upscaler") == "bicubic":
        clip.resize.Bicubic(clip.width * 2, clip.height * 2).set_output()
    else:
        upscale(clip[0], matrix=MATRIX).get_frame(0)  # warm torch up, as the bare engine is, with a separate filter
        upscale(clip, matrix=MATRIX).set_output()


class Run(NamedTuple):  # not a dataclass: vspipe runs this file as a module missing from sys.modules
    """One measured run: wall-clock speed, CPU seconds of all threads, peak RSS."""

    fps: float
    cpu: float
    rss: int = 0


def run_vspipe(src: str, crop: str, frames: int, threads: int | None, upscaler: str = "idsa") -> Run:
    """Run this file through ``vspipe -p`` (frames discarded); ``fps`` is what vspipe reports."""
    vspipe = Path(sys.executable).parent / "vspipe"
    env = {**os.environ, "PATH": f"{vspipe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    values = {"src": Path(src).resolve(), "crop": crop, "frames": frames, "upscaler": upscaler}
    args = [part for key, value in values.items() for part in ("-a", f"{key}={value}")]
    command = [str(vspipe), "-p", *args, str(Path(__file__).resolve()), "--"]
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        stderr = proc.stderr.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    found = re.search(r"Output (\d+) frames in [\d.]+ seconds \(([\d.]+) fps\)", stderr)
    if proc.returncode != 0 or found is None or int(found[1]) != frames:
        raise SystemExit(f"vspipe failed ({proc.returncode}):\n{stderr[-2000:]}")
    return Run(float(found[2]), usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024)


def run_engine(src: str, crop: str, frames: int) -> Run:
    """``Engine.stream`` on the same frames as float32 planar RGB, after a one-frame warm-up."""
    import numpy as np

    from idsa_plugin.engine import Engine

    rgb = source(src, crop, frames).resize.Bicubic(format=vs.RGBS, matrix_in_s=MATRIX, range_s="full")
    images = [np.stack([np.asarray(f[p]) for p in range(3)]) for f in rgb.frames()]
    engine = Engine("idsa-net-s", scale=2)
    engine.upscale(images[0], planar=True)
    cpu, start = time.process_time(), time.perf_counter()
    done = sum(1 for _ in engine.stream(images, planar=True))
    return Run(done / (time.perf_counter() - start), time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", help="video (default: bbb_480p_5s.mp4 of the shared data)")
    parser.add_argument("--crop", default="96x64", help="centred WxH window of the video (default 96x64)")
    parser.add_argument("--frames", type=int, default=60, help="frames for the speed comparison (default 60)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, best counts (default 2)")
    parser.add_argument("--threads", type=int, help="torch threads for both (default: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    root = data_root()
    if args.src is None and root is None:
        raise SystemExit("no --src and no shared data folder (../shared/data or $IDSA_DATA)")
    src = args.src or str(root / "video" / "bbb_480p_5s.mp4")

    bare, filtered, bare_cpu, filtered_cpu = [], [], [], []
    for _ in range(args.repeats):
        engine = run_engine(src, args.crop, args.frames)
        bare.append(engine.fps)
        bare_cpu.append(engine.cpu / args.frames)
        full, one = (run_vspipe(src, args.crop, n, args.threads) for n in (args.frames, 1))
        filtered.append(full.fps)
        filtered_cpu.append((full.cpu - one.cpu) / (args.frames - 1))  # start-up and warm-up cancel out

    def listed(values: list[float], digits: int) -> str:
        return ", ".join(f"{v:.{digits}f}" for v in values)

    threads = f"{args.threads} torch thread(s)" if args.threads else "default torch threads"
    print(f"{args.frames} frames {args.crop} -> x2, idsa-net-s, engine defaults, {threads}, best of {args.repeats}")
    print(f"bare engine (Engine.stream):    {max(bare):6.2f} fps ({listed(bare, 2)}), "
          f"{min(bare_cpu):.3f} CPU s/frame ({listed(bare_cpu, 3)})")
    print(f"VapourSynth filter (vspipe -p): {max(filtered):6.2f} fps ({listed(filtered, 2)}), "
          f"{min(filtered_cpu):.3f} CPU s/frame ({listed(filtered_cpu, 3)})")
    print(f"filter / engine: speed {max(filtered) / max(bare):.3f}, "
          f"CPU per frame {min(filtered_cpu) / min(bare_cpu):.3f}")
    for frames in (30, 300):
        idsa, bicubic = (run_vspipe(src, args.crop, frames, args.threads, up).rss / 2**20 for up in ("idsa", "bicubic"))
        print(f"peak RSS, {frames:3d} frames: {idsa:7.1f} MiB with the filter, {bicubic:7.1f} MiB with bicubic")


if __name__ == "__main__":
    main()
