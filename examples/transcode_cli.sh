#!/usr/bin/env bash
# Upscale a video from the command line, keeping its audio, subtitles, timing and colour.
#   examples/transcode_cli.sh [IN] [OUT_DIR]
# IN defaults to the Big Buck Bunny clip of the shared data (../shared/data or $IDSA_DATA).
# Meant for a GPU: on a CPU every 480p frame takes seconds (the last command, 6 frames, is the quick one).
set -euo pipefail
cd "$(dirname "$0")/.."
IN=${1:-${IDSA_DATA:-../shared/data}/video/bbb_480p_5s.mp4}
OUT=${2:-out}
mkdir -p "$OUT"
SR=.venv/bin/idsa-sr

# Two seconds from 1 s in, x2, H.264 CRF 18 (the defaults), progress bar and a JSON summary on stdout.
$SR transcode "$IN" "$OUT/preview_x2.mkv" --start 1 --duration 2 --progress --json --overwrite

# The whole clip as 10-bit HEVC in MP4; resumable: run it again after Ctrl-C to continue.
$SR transcode "$IN" "$OUT/full_x2.mp4" --codec libx265 --pix-fmt yuv420p10le --crf 20 --resume --overwrite

# Lossless FFV1 for further processing, skipping (and counting) frames that fail to decode.
$SR transcode "$IN" "$OUT/lossless_x2.mkv" --codec ffv1 --frames 6 --on-error skip --quiet --overwrite
