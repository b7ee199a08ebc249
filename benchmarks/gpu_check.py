"""CUDA checks and speed on one GPU, for benchmarks/gpu_check.sh (needs torch with CUDA; no PyAV/VapourSynth).

1. Correctness against fp32 on the GPU: fp16 and bf16 (PSNR on image-like frames), batching (a batch of 4
   equals its frames one by one), the three-stream ``Engine.stream`` (same frames as ``upscale_tensor``),
   tiling (close to the whole frame) and the overflow fallback (a model forced out of fp16's range).
2. fps for 1920x1080 -> 3840x2160 x2, idsa-net-s and IMDN, fp16 and bf16, batch 1 and 4, eager.
3. A training burst of ``--train-seconds`` (bf16 autocast, batch 64, 48x48 LR patches): it/s.
Prints one line per result and exits non-zero if a correctness check fails.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from idsa_plugin.engine import Engine, Frame
from idsa_plugin.export import image_like
from idsa_plugin.models import build_model, load_model


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / F.mse_loss(a.float(), b.float())))


def correctness(model: torch.nn.Module) -> list[str]:
    failures = []
    x = image_like((4, 3, 270, 480), torch.Generator().manual_seed(0)).cuda()
    exact = Engine(model, dtype="float32", tile=0).upscale_tensor(x)
    for dtype, floor in (("float16", 50.0), ("bfloat16", 45.0)):
        engine = Engine(model, dtype=dtype, batch=4, tile=0)
        got = engine.upscale_tensor(x)
        print(f"precision {dtype}: {psnr(got, exact):.1f} dB against fp32 (floor {floor})")
        failures += [f"{dtype} PSNR"] if psnr(got, exact) < floor else []
        single = torch.cat([engine.upscale_tensor(x[i:i + 1]) for i in range(4)])
        print(f"batching {dtype}: batch of 4 vs one by one max diff {float((single - got).abs().max()):.2e}")
        frames = [np.ascontiguousarray((x[i].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)) for i in range(4)]
        streamed = [f.image for f in engine.stream(Frame(f, i) for i, f in enumerate(frames * 3))]
        direct = engine.upscale_batch(frames)
        worst = max(int(np.abs(s.astype(int) - direct[i % 4].astype(int)).max()) for i, s in enumerate(streamed))
        print(f"streams {dtype}: 12 streamed frames vs upscale_batch max diff {worst} levels")
        failures += [f"{dtype} streams"] if worst > 1 else []
    tiled = Engine(model, dtype="float32", tile=(128, 128)).upscale_tensor(x)
    print(f"tiling 128x128: {psnr(tiled, exact):.1f} dB against the whole frame")
    failures += ["tiling"] if psnr(tiled, exact) < 35 else []
    hot = load_model("idsa-net-s", scale=2, device="cuda")
    with torch.no_grad():
        hot.upsample[0].weight.mul_(1e6)
    out = Engine(hot, dtype="float16").upscale_tensor(x[:1])
    print(f"overflow fallback: output finite {bool(torch.isfinite(out).all())}")
    failures += ["overflow"] if not torch.isfinite(out).all() else []
    return failures


def speed(repeats: int) -> None:
    x4 = torch.rand(4, 3, 1080, 1920, device="cuda")
    for name in ("idsa-net-s", "imdn"):
        model = build_model(name, 2).eval()
        for dtype in ("float16", "bfloat16"):
            for batch in (1, 4):
                engine = Engine(model, dtype=dtype, batch=batch, tile=0)
                x = x4[:batch]
                engine.upscale_tensor(x)
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(repeats):
                    engine.upscale_tensor(x)
                torch.cuda.synchronize()
                fps = batch * repeats / (time.perf_counter() - start)
                print(f"speed {name} {dtype} batch {batch}: {fps:.2f} fps at 1920x1080 -> 3840x2160", flush=True)


def training_burst(seconds: float) -> None:
    model = build_model("idsa-net-s", 2).cuda().to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    lr, hr = torch.rand(64, 3, 48, 48, device="cuda"), torch.rand(64, 3, 96, 96, device="cuda")
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.l1_loss(model(lr.contiguous(memory_format=torch.channels_last)), hr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
    torch.cuda.synchronize()
    print(f"training idsa-net-s x2, bf16 autocast, batch 64, 48x48: {steps / (time.perf_counter() - start):.2f} it/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--train-seconds", type=float, default=120)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 2
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    failures = correctness(load_model("idsa-net-s", scale=2, device="cuda", dtype="float32"))
    speed(args.repeats)
    training_burst(args.train_seconds)
    print("FAILED: " + ", ".join(failures) if failures else "all CUDA checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
