"""Arguments shared by the subcommands that run a model, and what those subcommands do alike."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Iterator

from ..archs import supported_scales

if TYPE_CHECKING:
    from ..engine import EngineOptions


def add_model_arguments(p: argparse.ArgumentParser, scale_default: int | None = 2) -> None:
    p.add_argument("--model", default="idsa-net-s", help="registered model name or weights file (default: idsa-net-s)")
    p.add_argument("--weights", help="weights file for the model (default: the shipped weights)")
    p.add_argument("--scale", type=int, default=scale_default, choices=supported_scales(), help="upscaling factor")
    p.add_argument("--device", help="cuda, cuda:1, mps or cpu (default: the best available)")
    p.add_argument("--dtype", help="float32, float16 or bfloat16 (default: the fastest that keeps quality on the device "
                                   "for the output's depth; --verbose says which and why)")


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, help="frames per batch (default: 4 on CUDA, 1 on CPU)")
    p.add_argument("--tile", help="WxH or N tiles in input pixels, 'auto' (default: only when memory needs it) or 0 (never)")
    p.add_argument("--overlap", type=int, help="tile overlap in input pixels (default 16)")
    p.add_argument("--backend", default="torch", choices=("torch", "openvino"), help="runtime for the model (openvino: CPU only)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model: about a minute to start, then faster (2.4x for idsa-net-s on a 2-core CPU)")
    p.add_argument("--pre", action="append", default=[], help="frame filter (from a plugin) before SR; repeatable")
    p.add_argument("--post", action="append", default=[], help="frame filter (from a plugin) after SR; repeatable")
    p.add_argument("--verbose", action="store_true", help="print the engine's resolved settings (device, precision and why, ...)")


def engine_options(args: argparse.Namespace) -> EngineOptions:
    """The :class:`~idsa_plugin.engine.EngineOptions` that parsed arguments ask for."""
    from ..engine import EngineOptions

    return EngineOptions.of(device=args.device, dtype=args.dtype, batch=getattr(args, "batch", None),
                            tile=getattr(args, "tile", None), overlap=getattr(args, "overlap", None),
                            pre=getattr(args, "pre", None), post=getattr(args, "post", None),
                            backend=getattr(args, "backend", None), compile=getattr(args, "compile", None))


def engine_line(settings: dict[str, Any]) -> str:
    """``Engine.describe()`` as one line."""
    return (f"{settings['device']}, {settings['dtype']} ({settings['precision']}), batch {settings['batch']}, "
            f"tile {settings['tile'] or 'off'}, backend {settings['backend']}" + (", compiled" if settings["compile"] else ""))


def report_engine(command: str, args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """With ``--verbose``, print the engine's resolved settings on stderr."""
    if getattr(args, "verbose", False):
        print(f"idsa-sr {command}: engine: {engine_line(settings)}", file=sys.stderr)


@contextlib.contextmanager
def video_command() -> Iterator[None]:
    """Around a command that encodes video: encoders stay quiet, and the process leaves no pipeline thread behind.

    SVT-AV1 prints a banner on stderr unless ``SVT_LOG`` is set (this process's environment, the
    application's choice). A transcode that fails returns at once while a stage may still be inside
    a model call; the command waits for it, because a process that exits under such a thread aborts.
    """
    from ..pipeline import Stage

    os.environ.setdefault("SVT_LOG", "1")
    try:
        yield
    finally:
        for thread in threading.enumerate():
            if isinstance(thread, Stage):
                thread.join()
