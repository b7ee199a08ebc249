"""``idsa-sr transcode``: upscale the video of a media file, keeping audio, subtitles, timing and colour."""
from __future__ import annotations

import argparse
import json
import sys

from .common import add_engine_arguments, add_model_arguments, engine_options, report_engine, video_command


def seconds(text: str) -> float:
    """Seconds as ``12.5``, ``MM:SS(.f)`` or ``HH:MM:SS(.f)``."""
    try:
        value = 0.0
        for part in text.split(":"):
            value = value * 60 + float(part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (use seconds or [HH:]MM:SS.f)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"negative time: {text!r}")
    return value


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def transcode_options(args: argparse.Namespace) -> dict:
    """Encoding, selection and run keywords of ``transcode``/``batch_transcode`` from parsed arguments."""
    return {"codec": args.codec, "crf": args.crf, "preset": args.preset, "pix_fmt": args.pix_fmt,
            "encoder_options": dict(args.encoder_option), "segment_frames": args.segment_frames,
            "start": args.start, "duration": args.duration, "frames": args.frames, "overwrite": args.overwrite,
            "on_error": args.on_error, "progress": not args.quiet and (args.progress or sys.stderr.isatty())}


def run(args: argparse.Namespace) -> int:
    from ..filters.pyav import transcode

    with video_command():
        summary = transcode(args.input, args.output, args.scale, args.model, args.weights, options=engine_options(args),
                            **transcode_options(args), resume=args.resume)
    report_engine("transcode", args, summary.engine)
    if not args.quiet:
        print(f"idsa-sr transcode: {summary.line()}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1))
    return 0


def add_encoding_arguments(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The encoder options (shared with ``batch``); returns the group."""
    from ..filters.pyav import DEFAULT_CODEC, DEFAULT_SEGMENT_FRAMES

    enc = p.add_argument_group("encoding")
    enc.add_argument("--codec", default=DEFAULT_CODEC, help="video encoder: libx264 (default), libx265, libsvtav1, ffv1 or any FFmpeg one")
    enc.add_argument("--crf", type=int, help="quality (default: 18 x264, 20 x265, 28 SVT-AV1)")
    enc.add_argument("--preset", help="encoder preset (e.g. slow for x264/x265, 6 for SVT-AV1)")
    enc.add_argument("--pix-fmt", help="output pixel format (default: the source's depth and chroma where the encoder takes them)")
    enc.add_argument("--encoder-option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                     help="extra encoder option, e.g. threads=2 or x265-params=aq-mode=3; repeatable")
    enc.add_argument("--segment-frames", type=int, default=DEFAULT_SEGMENT_FRAMES,
                     help=f"frames per closed-GOP segment, the unit of --resume (default {DEFAULT_SEGMENT_FRAMES})")
    return enc


def add_selection_arguments(p: argparse.ArgumentParser) -> None:
    """--start and --duration/--frames (shared with ``batch``)."""
    sel = p.add_argument_group("selection")
    sel.add_argument("--start", type=seconds, help="start this far after the first frame (seconds or [HH:]MM:SS.f)")
    span = sel.add_mutually_exclusive_group()
    span.add_argument("--duration", type=seconds, help="transcode this long")
    span.add_argument("--frames", type=int, help="transcode this many frames")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transcode", help="upscale a video file, keeping everything else",
        description="Upscale the video of IN into OUT (container from its extension). Audio, subtitles, attachments, "
                    "chapters and tags are copied; every frame keeps its timestamp; bit depth, colour tags, HDR10 "
                    "metadata (x265, SVT-AV1), SAR and rotation are kept. Written atomically; --resume continues an "
                    "interrupted run.")
    p.add_argument("input", help="source media file")
    p.add_argument("output", help="target file (.mkv, .mp4, .mov, ...)")
    add_model_arguments(p)
    add_engine_arguments(p)
    add_encoding_arguments(p)
    add_selection_arguments(p)
    run_group = add_run_arguments(p, overwrite_help="replace OUT if it exists")
    run_group.add_argument("--resume", action="store_true", help="keep finished segments when interrupted and continue from them")
    p.set_defaults(func=run)


def add_run_arguments(p: argparse.ArgumentParser, overwrite_help: str) -> argparse._ArgumentGroup:
    """--overwrite, --on-error, --progress, --quiet and --json, shared with ``idsa-sr batch``."""
    group = p.add_argument_group("run")
    group.add_argument("--overwrite", action="store_true", help=overwrite_help)
    group.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                       help="corrupt or truncated video: stop (default) or drop the bad frames and count them")
    group.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    group.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    group.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    return group
