"""`make demo`: upscale the bundled Big Buck Bunny clip x2 with the shipped idsa-net-s weights.

Keeps the audio, writes atomically, and prints where the result is. A second run replaces the
previous result (the demo owns its output file).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from idsa_plugin.filters.pyav import transcode

HERE = Path(__file__).resolve().parent
CLIP = HERE / "media" / "bbb_240p_3s.mp4"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=HERE.parent / "out" / "bbb_x2.mkv")
    parser.add_argument("--model", default="idsa-net-s")
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    print(f"upscaling {CLIP.name} (426x240, 72 frames, AAC) x2 with {args.model} ...", file=sys.stderr)
    summary = transcode(CLIP, args.output, scale=2, model=args.model, overwrite=True, progress=sys.stderr.isatty())
    print(summary.line(), file=sys.stderr)
    print(f"result: {Path(summary.output).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
