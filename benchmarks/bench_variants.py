"""Speed of IDSA-Net layouts side by side in one run, against IMDN: what chose idsa-net-s's layout.

    .venv/bin/python benchmarks/bench_variants.py [--size 320x180] [--repeats 3] [--train-steps 6]

Each row: parameters, ms per frame through ``Engine(model, tile=0)`` with its defaults (the precision the
hardware implies) on one 320x180 frame at x2, and training it/s (as in bench_models.py, at that precision).
Untrained weights: the time is the same as with trained ones. Quality is not measured here: a layout's
quality needs a training run (README "Results", RESULTS.md "Training").
"""
from __future__ import annotations

import argparse
import sys

import torch

from bench_models import best_seconds, training_its
from idsa_plugin.archs.idsa.arch import IDSANet
from idsa_plugin.builtin import IDSA_VARIANTS
from idsa_plugin.devices import cpu_accelerates_bf16, cpu_description, tune_cpu_allocator
from idsa_plugin.engine import Engine
from idsa_plugin.models import build_model

LAYOUTS = {
    "idsa-net-s until session 3 (2 groups of 2 blocks, LKCIP)": dict(channels=48, groups=2, blocks_per_group=2, smu_hidden=48),
    "2 groups of 2 blocks, no LKCIP": dict(channels=48, groups=2, blocks_per_group=2, smu_hidden=48, lkcip=False),
    "1 group of 3 blocks, no LKCIP": dict(channels=48, groups=1, blocks_per_group=3, smu_hidden=48, lkcip=False),
    "2 groups of 1 block, no LKCIP": dict(channels=48, groups=2, blocks_per_group=1, smu_hidden=48, lkcip=False),
    "idsa-net-s (1 group of 2 blocks, no LKCIP)": IDSA_VARIANTS["idsa-net-s"],
    "idsa-net-s, global channel attention for INHA": {**IDSA_VARIANTS["idsa-net-s"], "inha": False},
    "idsa-net-s at 64 channels": {**IDSA_VARIANTS["idsa-net-s"], "channels": 64, "smu_hidden": 64},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="320x180", help="input WxH (x2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=6)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    tune_cpu_allocator()
    amp = cpu_accelerates_bf16()
    print(f"{cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads; input {w}x{h} -> x2; "
          f"training {'bf16 autocast' if amp else 'fp32'}")
    x = torch.rand(1, 3, h, w)
    rows = [("IMDN", lambda: build_model("imdn", 2))]
    rows += [(label, lambda kw=kw: IDSANet(scale=2, **kw)) for label, kw in LAYOUTS.items()]
    measured = []
    for label, make in rows:
        torch.manual_seed(0)
        model = make().eval()
        engine = Engine(model, scale=2, device="cpu", tile=0)
        ms = 1000 * best_seconds(lambda: engine.upscale_tensor(x), args.repeats)
        its = training_its(make(), amp, args.train_steps)
        measured.append((label, sum(p.numel() for p in model.parameters()), ms, its))
        print(f"  {label}: {ms:.0f} ms, {its:.2f} it/s", file=sys.stderr, flush=True)
    imdn_ms, imdn_its = measured[0][2], measured[0][3]
    print("| layout | params | ms/frame | fps / IMDN fps | training it/s | / IMDN |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, params, ms, its in measured:
        print(f"| {label} | {params:,} | {ms:.0f} | {imdn_ms / ms:.2f} | {its:.2f} | {its / imdn_its:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
