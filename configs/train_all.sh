#!/usr/bin/env bash
# Continues the training plan from what landed: every shipped model in order (x2 first; x4 and x3 start
# from the x2 weights when they have no state yet), each resumed from its landed state in resume/
# (or its run's checkpoint), trained MORE steps as a warm restart (an interrupted run is finished first),
# its state landed again, and its best EMA export promoted into weights/ only if it beats the landed
# weights on Set5 and Set14.
# Usage: [THREADS=N] [MORE=steps] configs/train_all.sh [variant...]   (default: idsa-net, then idsa-net-s; THREADS=1 when other jobs share the CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
variants=("${@:-idsa-net idsa-net-s}")  # the paper's model first: its curve still climbs (session 5)
for variant in ${variants[@]}; do
  for scale in 2 4 3; do
    nice -n 10 .venv/bin/idsa-sr train --config "configs/$variant-x$scale.toml" --resume --more "${MORE:-2000}" \
      --promote "weights/$variant-x$scale.safetensors" --no-progress threads="${THREADS:-0}"
  done
done
