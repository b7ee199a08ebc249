#!/usr/bin/env bash
# Continues the training plan from what landed: every shipped model in order (x2 first; x4 and x3 start
# from the x2 weights when they have no state yet), each resumed from its landed state in resume/
# (or its run's checkpoint), trained MORE steps as a warm restart (an interrupted run is finished first),
# its state landed again, and its best EMA export promoted into weights/ only if it beats the landed
# weights on Set5 and Set14. Then a closing cycle of FINISH steps (default 1000; 0 skips it) at 3e-4 with
# pattern_prob = 0.1 teaches the pixel checkerboards and stripes that promotion checks: with pattern crops in
# the whole cycle idsa-net x2 lost 0.067 dB on Set5 (session 11's A/B), without any it failed the checkerboard probe;
# at x4, 500 steps at 2e-4 left the checkerboard failing, 1000 at 3e-4 passed from their 500th step (session 12).
# Each cycle's best export is its highest Set5 among the validations that pass the patterns.
# Usage: [PROCS=N] [THREADS=N] [MORE=steps] [FINISH=steps] configs/train_all.sh [variant...]   (default: idsa-net, then idsa-net-s)
#   PROCS=N: N data-parallel processes (torchrun, gloo) of one thread each, each taking 1/N of the config's
#   batch, so the step is the same; on the 2-core Zen 3, PROCS=2 ran idsa-net x2 at 0.31 it/s, against
#   0.12-0.14 for each of two 1-thread trainers side by side (session 6). THREADS=N (one process; 0 = all cores) otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
variants=("${@:-idsa-net idsa-net-s}")  # the paper's model first: its curve still climbs (sessions 5-6)
procs="${PROCS:-1}"
finish="${FINISH:-1000}"
# train CONFIG MODEL [--more N] [key=value ...]: one warm-restart cycle, promoted into weights/MODEL.safetensors
train() {
  local config="$1" model="$2"; shift 2
  local args=(train --config "$config" --resume --promote "weights/$model.safetensors" --no-progress "$@")
  if [ "$procs" -gt 1 ]; then
    local batch
    batch=$(.venv/bin/python -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['batch'] // $procs)" "$config")
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m torch.distributed.run --nproc_per_node "$procs" --master_port "${PORT:-29533}" \
      -m idsa_plugin.cli "${args[@]}" threads=1 batch="$batch"
  else
    nice -n 10 .venv/bin/idsa-sr "${args[@]}" threads="${THREADS:-0}"
  fi
}
for variant in ${variants[@]}; do
  for scale in 2 4 3; do
    config="configs/$variant-x$scale.toml"
    train "$config" "$variant-x$scale" --more "${MORE:-2000}"
    if [ "$finish" -gt 0 ]; then
      train "$config" "$variant-x$scale" --more "$finish" restart_lr=3e-4 pattern_prob=0.1
    fi
  done
done
