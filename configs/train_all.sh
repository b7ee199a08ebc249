#!/usr/bin/env bash
# Trains every shipped model in order (x2 first, x3/x4 fine-tuned from it), resuming where a run
# stopped, and copies each best EMA export into weights/.
# Usage: [THREADS=N] configs/train_all.sh [variant...]   (THREADS=1 when other jobs share the CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
variants=("${@:-idsa-net-s idsa-net}")
for variant in ${variants[@]}; do
  for scale in 2 4 3; do
    .venv/bin/idsa-sr train --config "configs/$variant-x$scale.toml" --resume --no-progress threads="${THREADS:-0}"
    cp "runs/$variant-x$scale/best.safetensors" "weights/$variant-x$scale.safetensors"
  done
done
