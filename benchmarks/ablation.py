"""The paper's ablation on idsa-net-s: each module switched off, one short equal training budget.

    .venv/bin/python benchmarks/ablation.py [--steps 300] [--scale 2] [--threads 1] [--out runs/ablation]

Trains the full model and one variant per switch (share_attention, lkcip, inha, interp_skip off)
with identical data, seed and schedule, then prints Set5/Set14 PSNR, parameters, MACs at 1280x720
output and CPU ms per 320x180 input frame (process CPU time at one thread: robust to other jobs
sharing the machine). A finished variant is not retrained: its run folder is resumed.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from idsa_plugin.evaluate import data_root, evaluate, model_upscaler
from idsa_plugin.train import Trainer, load_config

VARIANTS = {"full": {}, "no shared attention": {"share_attention": False}, "no LKCIP": {"lkcip": False},
            "no INHA": {"inha": False}, "no interp skip": {"interp_skip": False}}


def cost(model: torch.nn.Module, scale: int) -> tuple[int, float, float]:
    """Parameters, GMACs at 1280x720 output, and single-thread CPU ms for one 320x180 input frame (best of 3)."""
    model = model.eval().to(memory_format=torch.channels_last)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.rand(1, 3, 720 // scale, 1280 // scale))
    x = torch.rand(1, 3, 180, 320).contiguous(memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(3):
            start = time.process_time()
            model(x)
            times.append(time.process_time() - start)
    torch.set_num_threads(threads)
    ms = min(times) * 1000
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 2e9, ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/ablation")
    args = parser.parse_args()
    data = data_root()
    rows = []
    for label, options in VARIANTS.items():
        overrides = [f"name='{label.replace(' ', '-')}'", f"out='{args.out}'", f"scale={args.scale}", f"steps={args.steps}",
                     "lr_patch=32", "batch=16", "workers=1", "warmup=50", f"threads={args.threads}", f"validate_every={args.steps}",
                     f"checkpoint_every={args.steps}", "progress=false"]
        overrides += [f"model_options.{k}={str(v).lower()}" for k, v in options.items()]
        trainer = Trainer(load_config(None, overrides))
        start = time.perf_counter()
        trainer.train(resume=True)
        minutes = (time.perf_counter() - start) / 60
        results = evaluate(model_upscaler(trainer.ema), data, ("Set5", "Set14"), args.scale)
        params, gmacs, ms = cost(trainer.ema, args.scale)
        rows.append((label, results[0].psnr, results[1].psnr, params, gmacs, ms, minutes))
        print(f"done: {label}", flush=True)
    print(f"\nidsa-net-s x{args.scale}, {args.steps} steps each (batch 16, 32x32 LR patches, seed 0, {args.threads} thread(s)), EMA weights")
    print(f"{'variant':<20} {'Set5':>7} {'Set14':>7} {'params':>8} {'GMACs':>7} {'CPU ms':>9} {'train min':>9}")
    for label, s5, s14, params, gmacs, ms, minutes in rows:
        print(f"{label:<20} {s5:>7.3f} {s14:>7.3f} {params:>8,} {gmacs:>7.2f} {ms:>9.0f} {minutes:>9.1f}")


if __name__ == "__main__":
    main()
