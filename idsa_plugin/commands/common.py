"""Arguments shared by the subcommands that run a model."""
from __future__ import annotations

import argparse


def add_model_arguments(p: argparse.ArgumentParser, scale_default: int | None = 2) -> None:
    p.add_argument("--model", default="idsa-net-s", help="registered model name or weights file (default: idsa-net-s)")
    p.add_argument("--weights", help="weights file for the model (default: the shipped weights)")
    p.add_argument("--scale", type=int, default=scale_default, choices=(2, 3, 4), help="upscaling factor")
    p.add_argument("--device", help="cuda, cuda:1, mps or cpu (default: the best available)")
    p.add_argument("--dtype", help="float32 (CPU default), float16 (CUDA default) or bfloat16")


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, help="frames per batch (default: 4 on CUDA, 1 on CPU)")
    p.add_argument("--tile", help="WxH or N tiles in input pixels, 'auto' (default: only when memory needs it) or 0 (never)")
    p.add_argument("--overlap", type=int, help="tile overlap in input pixels (default 16)")
    p.add_argument("--backend", default="torch", choices=("torch", "openvino"), help="runtime for the model (openvino: CPU, float32)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model: about a minute to start, then faster (2.4x for idsa-net-s on a 2-core CPU)")
    p.add_argument("--pre", action="append", default=[], help="frame filter (from a plugin) before SR; repeatable")
    p.add_argument("--post", action="append", default=[], help="frame filter (from a plugin) after SR; repeatable")


def engine_options(args: argparse.Namespace) -> dict:
    """Keyword arguments for :class:`idsa_plugin.engine.Engine` from parsed arguments."""
    return {"scale": args.scale, "weights": args.weights, "device": args.device, "dtype": args.dtype,
            "batch": getattr(args, "batch", None), "tile": getattr(args, "tile", None), "overlap": getattr(args, "overlap", None),
            "pre": getattr(args, "pre", None), "post": getattr(args, "post", None), "backend": getattr(args, "backend", "torch"),
            "compile": getattr(args, "compile", False)}
