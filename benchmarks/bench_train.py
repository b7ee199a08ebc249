"""Training step speed on this machine: what bf16 autocast, small patches and ``torch.compile`` buy, side by side.

    .venv/bin/python benchmarks/bench_train.py [--models idsa-net-s idsa-net imdn] [--threads 2] [--steps 10]

One step = forward, L1 loss, backward, AdamW update on a batch of 16 random LR patches (the data
loader is left out: it runs in its own worker). Prints iterations per second and the ratio of each
setting to eager fp32 at 48x48 patches for the same model.
"""
from __future__ import annotations

import argparse
import time

import torch

from idsa_plugin.devices import cpu_accelerates_bf16, cpu_description
from idsa_plugin.models import build_model


def steps_per_second(name: str, scale: int, patch: int, bf16: bool, compiled: bool, steps: int) -> tuple[float, float]:
    """Measured it/s after warm-up, and the seconds the warm-up (compilation included) took."""
    torch.manual_seed(0)
    model = build_model(name, scale).to(memory_format=torch.channels_last).train()
    network = torch.compile(model) if compiled else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    lr = torch.rand(16, 3, patch, patch).contiguous(memory_format=torch.channels_last)
    hr = torch.rand(16, 3, patch * scale, patch * scale)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.l1_loss(network(lr).float(), hr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    for _ in range(2):
        step()
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start), warmup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["idsa-net-s", "idsa-net", "imdn"])
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(cpu_description())
    print(f"batch 16, x{args.scale}, {args.threads} thread(s), {args.steps} timed steps after 2 warm-up steps")
    precisions = (False, True) if cpu_accelerates_bf16() else (False,)
    print(f"{'model':<12} {'LR patch':>8} {'amp':>5} {'compile':>8} {'it/s':>7} {'vs fp32 48':>11} {'warm-up s':>10}")
    for name in args.models:
        base = None
        for patch, bf16, compiled in [(p, b, c) for p in (48, 32) for b in precisions for c in (False, True) if p == 32 or not c]:
            its, warmup = steps_per_second(name, args.scale, patch, bf16, compiled, args.steps)
            base = base or its
            amp = "bf16" if bf16 else "fp32"
            print(f"{name:<12} {patch:>8} {amp:>5} {str(compiled):>8} {its:>7.2f} {its / base:>10.2f}x {warmup:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
