#!/usr/bin/env bash
# One GPU session of the training plan (under 9 minutes on one H200): VARIANT x2 (default idsa-net, the
# paper's model, which needs the compute most) resumed from the landed state (resume/, or its landed
# weights while it has none), bf16 AMP, batch 64 of 48x48 LR patches, as a warm restart, with
# checkpoints and the best EMA export copied to $OUT every minute, so a cut run still returns them.
# Prepare here (the device machine cannot reach ../shared): make gpu-data (copies T91, BSD200, Set5 and
# Set14 into .gpu-data/, about 62 MB), then run on the device with carry [".gpu-data"]:
#   bash configs/train_gpu.sh
# Afterwards, here: copy $OUT/VARIANT-x2-gpu/checkpoint.pt to resume/VARIANT-x2.pt, and promote the
# export: idsa_plugin.train.promote.promote(best, "weights/VARIANT-x2.safetensors", data_root()).
set -euo pipefail
cd "$(dirname "$0")/.."
variant="${VARIANT:-idsa-net}"
out="${OUT:-out}/$variant-x2-gpu"
mkdir -p "$out"
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
export IDSA_DATA="$PWD/.gpu-data"
timeout 500 python3 -m idsa_plugin.cli train --config configs/$variant-x2.toml --resume --more "${MORE:-20000}" --no-progress \
  name=$variant-x2-gpu out="'runs'" batch=64 lr_patch=48 workers=6 amp="'bf16'" validate_every=1000 checkpoint_every=500 \
  restart_lr=1e-3 compile=false &
trainer=$!
while kill -0 "$trainer" 2>/dev/null; do  # every minute: what a cut run must not lose
  sleep 60
  cp runs/$variant-x2-gpu/checkpoint.pt runs/$variant-x2-gpu/best.safetensors runs/$variant-x2-gpu/metrics.csv "$out/" 2>/dev/null || true
done
wait "$trainer" || true
cp runs/$variant-x2-gpu/checkpoint.pt runs/$variant-x2-gpu/best.safetensors runs/$variant-x2-gpu/metrics.csv "$out/" 2>/dev/null || true
