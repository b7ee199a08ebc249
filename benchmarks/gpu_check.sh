#!/usr/bin/env bash
# The prepared GPU check (under 8 minutes on one H200): CUDA correctness of precision, batching, streams,
# tiling and the fp16 overflow fallback; 1080p -> 4K fps of idsa-net-s and IMDN; a 2-minute training burst.
# On the device machine (its python3 has torch with CUDA; PyAV and VapourSynth are not needed):
#   run: bash benchmarks/gpu_check.sh   (output also in $OUT/gpu_check.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-out}"
mkdir -p "$out"
# The package from this tree, without dependencies (nothing can be fetched there; torch is already installed)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
timeout 450 python3 benchmarks/gpu_check.py --train-seconds 120 2>&1 | tee "$out/gpu_check.txt"
