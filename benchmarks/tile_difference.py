"""How far tiled inference departs from whole-frame inference, in 8-bit levels, per tile size and overlap.

    .venv/bin/python benchmarks/tile_difference.py [--crop 256] [--tiles 32 48 64 96 128] [--overlaps 8 16 32]

Images: a centred ``--crop`` square of every Set14 image of the shared data. Each is upscaled by
``Engine(model, tile=0)`` and by ``Engine(model, tile=(t, t), overlap=o)`` (float32 planar in and
out, CPU); the table gives, over all images, the largest absolute difference of the two outputs
times 255, the largest away from the image's edges (past half an attention window), the mean, and
the share of pixels whose rounded 8-bit value changes. Instance norm, the attention windows and the
pooled channel attention see only their tile, hence the difference; at the image's edges the
shifted windows' ``torch.roll`` wraps around the tile instead of the frame. ``run_tiled`` spreads
tiles evenly, so the real overlap can exceed the one asked for, and caps it at half the tile.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from idsa_plugin.engine import Engine
from idsa_plugin.evaluate import data_root, load_rgb
from idsa_plugin.models import load_model


def crops(size: int) -> list[np.ndarray]:
    """Centred ``size`` squares of the Set14 images as planar float32 RGB in [0, 1]."""
    root = data_root()
    if root is None:
        raise SystemExit("shared data not found: set IDSA_DATA or place it at ../shared/data")
    out = []
    for path in sorted((root / "benchmarks" / "Set14").glob("*.png")):
        image = load_rgb(path)
        h, w = image.shape[:2]
        if min(h, w) < size:
            continue
        top, left = (h - size) // 2, (w - size) // 2
        out.append(np.ascontiguousarray(image[top:top + size, left:left + size].transpose(2, 0, 1), dtype=np.float32) / 255)
    return out


def upscale_all(engine: Engine, images: list[np.ndarray]) -> list[np.ndarray]:
    return [engine.upscale(image, planar=True) for image in images]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="idsa-net-s")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--weights", help="weights file (default: the shipped weights)")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--tiles", type=int, nargs="+", default=[32, 48, 64, 96, 128])
    parser.add_argument("--overlaps", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (results do not depend on it)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, scale=args.scale, weights=args.weights, device="cpu", dtype="float32")
    images = crops(args.crop)
    whole = upscale_all(Engine(model, device="cpu", tile=0), images)
    step = model.idsa_info.metadata.get("steps", "?")
    print(f"{args.model} x{args.scale} (weights at step {step}), {len(images)} Set14 crops of {args.crop}x{args.crop}; "
          "differences in 8-bit levels")
    edge = getattr(model, "window", 0) // 2 * args.scale
    print(f"| tile | overlap | max | max {edge}+ px from edges | mean | pixels changed |\n| ---: | ---: | ---: | ---: | ---: | ---: |")
    for tile in args.tiles:
        for overlap in args.overlaps:
            tiled = upscale_all(Engine(model, device="cpu", tile=(tile, tile), overlap=overlap), images)
            diffs = [np.abs(t - w) * 255 for t, w in zip(tiled, whole)]
            changed = np.mean([np.mean(np.round(t * 255) != np.round(w * 255)) for t, w in zip(tiled, whole)])
            inside = max(d[:, edge:d.shape[1] - edge, edge:d.shape[2] - edge].max() for d in diffs)
            print(f"| {tile} | {overlap} | {max(d.max() for d in diffs):.2f} | {inside:.2f} | {np.mean([d.mean() for d in diffs]):.3f} | "
                  f"{100 * changed:.2f}% |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
