"""``idsa-sr upscale``: upscale image files (PNG, JPEG, WebP, TIFF)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_engine_arguments, add_model_arguments, engine_options, report_engine


def run(args: argparse.Namespace) -> int:
    from ..atomic import check_target
    from ..engine import Engine
    from ..filters.images import output_path, read_picture, upscale_picture, write_picture

    sources = [Path(p) for p in args.inputs]
    many = len(sources) > 1
    targets = [output_path(src, args.output, args.scale, many) for src in sources]
    for target in targets:
        check_target(target, args.overwrite)
    pictures = [read_picture(src) for src in sources]
    bits = max(picture.pixels.dtype.itemsize * 8 for picture in pictures)  # the automatic precision needs the depth
    engine = Engine(args.model, args.scale, args.weights, engine_options(args), output_bits=bits)
    report_engine("upscale", args, engine.describe())
    for src, picture, target in zip(sources, pictures, targets):
        write_picture(upscale_picture(engine, picture), target, overwrite=args.overwrite)
        print(f"{src} -> {target}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="upscale images", description="Upscale PNG/JPEG/WebP/TIFF images (8/16-bit, grey, RGB, RGBA; "
                       "alpha upscaled separately; ICC profile kept; written atomically).")
    p.add_argument("inputs", nargs="+", help="image files")
    p.add_argument("-o", "--output", type=Path, required=True, help="output file (one input) or folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_model_arguments(p)
    add_engine_arguments(p)
    p.set_defaults(func=run)
