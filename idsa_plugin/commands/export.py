"""``idsa-sr export``: a model as ONNX (onnxruntime, vs-mlrt, OpenVINO) or as safetensors for sharing."""
from __future__ import annotations

import argparse

from ..archs import supported_scales


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """``WxH`` or ``NxWxH`` (input pixels, batch N default 1) -> (N, 3, H, W)."""
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) not in (2, 3) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected WxH or NxWxH with positive numbers, got {text!r}")
    n, w, h = parts if len(parts) == 3 else (1, *parts)
    return (n, 3, h, w)


def run(args: argparse.Namespace) -> int:
    from ..export import export_model

    if args.format == "onnx" and not args.dynamic and args.shape is None:
        raise ValueError("ONNX export needs --dynamic (any batch and size) or --shape WxH (one fixed size)")
    if args.format == "safetensors" and (args.dynamic or args.shape):
        raise ValueError("--dynamic and --shape apply to ONNX only")
    report = export_model(args.model, args.scale, args.format, args.output, weights=args.weights, dynamic=args.dynamic,
                          shape=args.shape, opset=args.opset, fp16=args.fp16, overwrite=args.overwrite)
    size = report.path.stat().st_size / 1e6
    print(f"wrote {report.path} ({report.format}, {'float16' if args.fp16 else 'float32'}, {size:.2f} MB)")
    print(f"check: {report.summary()}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..export import DEFAULT_OPSET, FORMATS

    p = sub.add_parser("export", help="export a model to ONNX or safetensors",
                       description="Export a model. ONNX: one self-contained file, input 'input' and output 'output', "
                                   "NCHW float32 RGB in [0, 1] (output unclamped), checked against torch in onnxruntime "
                                   "before it is written; runs in onnxruntime, OpenVINO and vs-mlrt (core.ort.Model, "
                                   "core.ov.Model). safetensors: the weights with their metadata, for sharing.")
    p.add_argument("--model", default="idsa-net-s", help="registered model name or weights file (default: idsa-net-s)")
    p.add_argument("--weights", help="weights file for the model (default: the shipped weights)")
    p.add_argument("--scale", type=int, default=2, choices=supported_scales(), help="upscaling factor (default 2)")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="output format (default onnx)")
    p.add_argument("--dynamic", action="store_true", help="ONNX with free batch, height and width")
    p.add_argument("--shape", type=parse_shape, help="ONNX fixed input size WxH or NxWxH (without --dynamic)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--fp16", action="store_true", help="float16 weights (ONNX: float16 arithmetic, float32 input/output)")
    p.add_argument("-o", "--output", required=True, help="output file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run)
