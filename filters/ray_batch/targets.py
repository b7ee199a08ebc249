"""Which output each input video goes to."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..pyav import TranscodeError

VIDEO_EXTENSIONS = {".mkv", ".mp4", ".mov", ".m4v", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv",
                    ".wmv", ".y4m", ".ogv"}


def targets(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, ext: str | None = None) -> list[tuple[Path, Path]]:
    """(source, output) pairs: files go to ``out_dir/NAME``, the video files under a folder (but not
    under ``out_dir``, nor hidden) to ``out_dir/RELATIVE/PATH``; ``ext`` (e.g. "mkv") replaces the extension."""
    out = Path(out_dir)
    pairs: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                           and not p.name.startswith(".") and out.resolve() not in p.resolve().parents)
            pairs += [(p, out / p.relative_to(item)) for p in found]
        else:
            pairs.append((item, out / item.name))
    if ext:
        pairs = [(src, dst.with_suffix("." + ext.lstrip("."))) for src, dst in pairs]
    unique: dict[Path, tuple[Path, Path]] = {}
    for src, dst in pairs:
        if dst.resolve() == src.resolve():
            raise TranscodeError(f"{src}: the output would replace the input; choose another output folder or --ext")
        other, _ = unique.setdefault(dst.resolve(), (src, dst))
        if other.resolve() != src.resolve():
            raise TranscodeError(f"{other} and {src} would both be written to {dst}; rename one or use separate runs")
    return list(unique.values())
