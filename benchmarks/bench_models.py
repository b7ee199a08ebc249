"""Model speed side by side in one run: ms per frame of idsa-net-s, idsa-net and IMDN in each precision and
backend through the engine, the machine's matmul and conv peaks measured in the same run (and each model's
share of them), training it/s, and (``--vsmlrt``) our VapourSynth filter against vs-mlrt on our ONNX.

    .venv/bin/python benchmarks/bench_models.py [--size 320x180] [--repeats 3] [--train-steps 6] [--vsmlrt]

Inference: ``Engine(model, dtype=..., backend=..., tile=0).upscale_tensor`` on one (1, 3, H, W) frame
(what every adapter calls), best of ``--repeats`` after a warm-up call (OpenVINO compiles then). The
``defaults`` rows use the engine's defaults, whatever they pick on this machine. "x imdn": time
relative to IMDN in the same precision and backend (below 1: faster than IMDN). GFLOP counted by
``torch.utils.flop_counter`` (2 per MAC); "% peak": achieved GFLOP/s over the matmul peak of the same
precision. Training: forward + L1 + backward + AdamW on 16 random 32x32 LR patches, fp32 and (where
the CPU accelerates it) bf16 autocast, as the trainer runs them.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from idsa_plugin.devices import cpu_accelerates_bf16, cpu_description, tune_cpu_allocator
from idsa_plugin.engine import Engine
from idsa_plugin.models import build_model

MODELS = ("idsa-net-s", "idsa-net", "imdn")


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """Best wall-clock seconds of ``repeats`` calls after one warm-up call."""
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def peaks(dtypes: list[torch.dtype], repeats: int) -> dict[str, float]:
    """GFLOP/s of a 2048^3 matmul and of a channels-last 3x3 conv 64->64 on 1x64x180x320, per precision."""
    found = {}
    for dtype in dtypes:
        name = str(dtype).removeprefix("torch.")
        a, b = torch.rand(2048, 2048, dtype=dtype), torch.rand(2048, 2048, dtype=dtype)
        found[f"matmul {name}"] = 2 * 2048 ** 3 / best_seconds(lambda: a @ b, repeats) / 1e9
        x = torch.rand(1, 64, 180, 320, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.rand(64, 64, 3, 3, dtype=dtype).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            seconds = best_seconds(lambda: F.conv2d(x, w, padding=1), repeats)
        found[f"conv3x3 {name}"] = 2 * 64 * 64 * 9 * 180 * 320 / seconds / 1e9
    return found


def gflop_per_frame(model: torch.nn.Module, h: int, w: int) -> float:
    """With autograd on, so that the aten ops run (the counter does not know oneDNN's fused inference ops)."""
    with FlopCounterMode(display=False) as counter, torch.enable_grad():
        model(torch.rand(1, 3, h, w))
    return counter.get_total_flops() / 1e9


def inference_rows(size: tuple[int, int], repeats: int, precisions: list[str], backends: list[str]) -> list[dict]:
    w, h = size
    x = torch.rand(1, 3, h, w)
    rows = []
    for name in MODELS:
        model = build_model(name, 2).eval()  # untrained weights: the time is the same as with the shipped ones
        gflop = gflop_per_frame(model, h, w)
        settings = [("defaults", {})] + [(f"{p} {b}", {"dtype": p, "backend": b}) for b in backends for p in precisions]
        for label, options in settings:
            engine = Engine(model, device="cpu", tile=0, **options)
            seconds = best_seconds(lambda: engine.upscale_tensor(x), repeats)
            rows.append({"model": name, "setting": label, "dtype": str(engine.dtype).removeprefix("torch."),
                         "backend": engine.options.backend, "ms": 1000 * seconds, "gflop": gflop})
            print(f"  {name} {label}: {1000 * seconds:.0f} ms", file=sys.stderr, flush=True)
    return rows


def training_its(model: torch.nn.Module, amp: bool, steps: int) -> float:
    """Steps per second of forward, L1, backward and AdamW on 16 random 32x32 LR patches (x2)."""
    torch.manual_seed(0)
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    lr = torch.rand(16, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    hr = torch.rand(16, 3, 64, 64)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.l1_loss(model(lr), hr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def print_inference(rows: list[dict], found: dict[str, float]) -> None:
    imdn = {r["setting"]: r["ms"] for r in rows if r["model"] == "imdn"}
    print("| model | setting | dtype | backend | ms/frame | fps | GFLOP/frame | GFLOP/s | % matmul peak | x imdn |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        rate = r["gflop"] / (r["ms"] / 1000)
        peak = found.get(f"matmul {r['dtype']}", found["matmul float32"])
        print(f"| {r['model']} | {r['setting']} | {r['dtype']} | {r['backend']} | {r['ms']:.0f} | {1000 / r['ms']:.2f} | "
              f"{r['gflop']:.1f} | {rate:.0f} | {100 * rate / peak:.0f}% | {r['ms'] / imdn[r['setting']]:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="320x180", help="input WxH (x2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=6, help="timed training steps per setting (0: skip)")
    parser.add_argument("--no-openvino", dest="openvino", action="store_false")
    parser.add_argument("--vsmlrt", action="store_true", help="then run benchmarks/bench_vsmlrt.py (filter vs vs-mlrt)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    tune_cpu_allocator()
    precisions = ["float32"] + (["bfloat16"] if cpu_accelerates_bf16() else [])
    backends = ["torch"] + (["openvino"] if args.openvino else [])
    print(f"{cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads; input {size[0]}x{size[1]} -> x2")
    found = peaks([getattr(torch, p) for p in precisions], args.repeats)
    print("peaks (GFLOP/s): " + ", ".join(f"{k} {v:.0f}" for k, v in found.items()))
    print_inference(inference_rows(size, args.repeats, precisions, backends), found)
    if args.train_steps:
        print("\n| model | training | it/s |\n| --- | --- | ---: |")
        for name in MODELS:
            for amp in [False] + ([True] if cpu_accelerates_bf16() else []):
                print(f"| {name} | {'bf16 autocast' if amp else 'fp32'} | {training_its(build_model(name, 2), amp, args.train_steps):.2f} |", flush=True)
    if args.vsmlrt:
        print()
        script = Path(__file__).with_name("bench_vsmlrt.py")
        return subprocess.call([sys.executable, str(script), "--size", args.size,
                                "--frames", "12", "--repeats", "2"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
