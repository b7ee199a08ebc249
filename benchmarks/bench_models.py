"""CPU (or CUDA) ms per frame of every model for 640x360 -> x2, batch 1 and 4, eager and torch.compile,
and the achieved GFLOP/s against an fp32 matmul peak measured in the same run.

    .venv/bin/python benchmarks/bench_models.py [--models idsa-net-s,idsa-net,imdn] [--batches 1,4] [--repeats 2] [--no-compile]
"""
from __future__ import annotations

import argparse
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from idsa_plugin.models import build_model


def matmul_peak(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of a square matmul."""
    a, b = torch.rand(size, size, device=device), torch.rand(size, size, device=device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops()


def time_model(run, x: torch.Tensor, repeats: int) -> float:
    """Best seconds of ``repeats`` calls, after one warm-up call (compiles, if compiled)."""
    with torch.inference_mode():
        run(x)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            run(x)
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="idsa-net-s,idsa-net,imdn")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", default="640x360", help="input WxH")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    w, h = map(int, args.size.split("x"))
    peak = matmul_peak(device)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"fp32 matmul peak {peak:.1f} GFLOP/s; input {w}x{h} -> x2, channels_last, inference_mode")
    print(f"{'model':<11} {'mode':<8} {'batch':>5} {'ms/frame':>9} {'GFLOP/frame':>12} {'GFLOP/s':>8} {'% peak':>7} {'vs imdn':>8}")
    reference: dict[tuple[str, int], float] = {}
    rows = []
    for name in args.models.split(","):
        model = build_model(name, 2).eval().to(device).to(memory_format=torch.channels_last)
        per_frame = flops(model, torch.rand(1, 3, h, w, device=device)) / 1e9
        modes = [("eager", model)] + ([("compile", torch.compile(model))] if args.compile else [])
        for mode, run in modes:
            for batch in map(int, args.batches.split(",")):
                x = torch.rand(batch, 3, h, w, device=device).contiguous(memory_format=torch.channels_last)
                ms = time_model(run, x, args.repeats) / batch * 1000
                if name == "imdn":
                    reference[(mode, batch)] = ms
                rows.append((name, mode, batch, ms, per_frame))
    for name, mode, batch, ms, per_frame in rows:
        rate = per_frame / (ms / 1000)
        ratio = f"{ms / reference[(mode, batch)]:.2f}x" if (mode, batch) in reference else "-"
        print(f"{name:<11} {mode:<8} {batch:>5} {ms:>9.0f} {per_frame:>12.1f} {rate:>8.1f} {100 * rate / peak:>6.0f}% {ratio:>8}")


if __name__ == "__main__":
    main()
