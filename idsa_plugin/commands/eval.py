"""``idsa-sr eval``: Y-PSNR/SSIM on benchmark sets with the protocol that reproduces published tables."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .common import add_model_arguments


def run(args: argparse.Namespace) -> int:
    from ..atomic import atomic_path
    from ..evaluate import bicubic_upscaler, data_root, evaluate, model_upscaler

    data = data_root(args.data)
    if data is None:
        raise FileNotFoundError("benchmark data not found: pass --data DIR (with benchmarks/Set5 ...) or set IDSA_DATA")
    if args.model == "bicubic":
        upscale, label = bicubic_upscaler(args.scale), "bicubic (MATLAB)"
    else:
        from ..models import load_model

        model = load_model(args.model, scale=args.scale, weights=args.weights, device=args.device, dtype=args.dtype)
        upscale, label = model_upscaler(model), f"{args.model} x{args.scale} ({model.idsa_info.weights})"
    start = time.perf_counter()
    results = evaluate(upscale, data, args.sets.split(","), args.scale, args.save_images, args.legacy_grey)
    seconds = time.perf_counter() - start
    print(f"{label}: Y-PSNR / SSIM, {args.scale}-pixel border shaved")
    print(f"{'set':<8} {'images':>6} {'PSNR':>8} {'SSIM':>7}")
    for r in results:
        print(f"{r.name:<8} {r.images:>6} {r.psnr:>8.3f} {r.ssim:>7.4f}")
    print(f"({seconds:.1f} s)")
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps({"model": args.model, "scale": args.scale, "results": [r.as_dict() for r in results]}, indent=2))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM on Set5/Set14/B100",
                       description="Evaluate a model (or 'bicubic') with MATLAB-exact bicubic LR, modcrop, Y channel in float, "
                                   "border shave, PSNR and SSIM: the protocol of shared/data/SOURCES.md.")
    add_model_arguments(p)
    p.add_argument("--data", help="data folder holding benchmarks/<Set>, or that benchmarks folder (default: $IDSA_DATA or ../shared/data)")
    p.add_argument("--sets", default="Set5,Set14,B100", help="comma-separated sets (default Set5,Set14,B100)")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.add_argument("--legacy-grey", action="store_true",
                   help="score grey images (Set14's bridge) on raw values, as the published bicubic rows did")
    p.add_argument("--save-images", type=Path, help="save the SR images under this folder")
    p.set_defaults(func=run)
