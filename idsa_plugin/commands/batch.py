"""``idsa-sr batch``: upscale many videos, and long ones, on Ray workers (this machine or a cluster)."""
from __future__ import annotations

import argparse
import json
import sys

from .common import add_engine_arguments, add_model_arguments, engine_options, report_engine, video_command
from .transcode import add_encoding_arguments, add_run_arguments, add_selection_arguments, transcode_options


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from ..filters.ray_batch import batch_transcode

    with video_command():
        summary = batch_transcode(
            args.inputs, args.output_dir, args.scale, args.model, args.weights, options=engine_options(args),
            **transcode_options(args), ext=args.ext, ray_address=args.ray_address, workers=args.workers,
            threads=args.threads, segment_seconds=args.segment_seconds,
        )
    for worker in summary.workers:
        report_engine("batch", args, worker.engine)
    for video in summary.failed:
        where = "" if video.source in video.error else f"{video.source}: "
        print(f"idsa-sr batch: error: {where}{video.error}", file=sys.stderr)
    if not args.quiet:
        print(f"idsa-sr batch: {summary.line()}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1))
    return 1 if summary.failed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch", help="upscale many videos (or long ones) on Ray workers",
        description="Upscale every INPUT (video files, or folders searched for them) into OUTDIR, keeping everything "
                    "else as transcode does. The unit of work is a closed-GOP segment, so one long video spreads over "
                    "all workers too. Without --ray-address a local Ray runtime starts in this process; with it, the "
                    "workers run on that cluster (inputs and OUTDIR on a shared filesystem, or segments travel as "
                    "bytes). Re-running the same command skips finished videos and segments.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video file or folder of videos")
    p.add_argument("-o", "--output-dir", required=True, metavar="OUTDIR",
                   help="where outputs go (OUTDIR/NAME, or OUTDIR/RELATIVE/PATH for videos found in a folder)")
    p.add_argument("--ext", help="output container extension, e.g. mkv (default: the input's)")
    add_model_arguments(p)
    add_engine_arguments(p)
    cluster = p.add_argument_group("workers")
    cluster.add_argument("--ray-address", help="join this Ray cluster (e.g. auto or HOST:6379) instead of starting a local one")
    cluster.add_argument("--workers", type=int, help="workers (default: one per GPU of the cluster, else one per --threads CPUs)")
    cluster.add_argument("--threads", type=int, default=1, help="CPU threads (and Ray CPUs) per worker (default 1)")
    enc = add_encoding_arguments(p)
    enc.add_argument("--segment-seconds", type=positive,
                     help="segment length in seconds of each video (instead of --segment-frames): the unit of work")
    add_selection_arguments(p)
    add_run_arguments(p, overwrite_help="redo and replace outputs that exist (else they are skipped)")
    p.set_defaults(func=run)
