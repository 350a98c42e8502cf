#!/usr/bin/env bash
# Paper-scale wall time on one GPU, side by side (issue 24), in one device call: bf16, CUDA events, warm-up first,
# 64-1024 frames, eager and then with the DiT blocks compiled. Writes speed_gpu.{json,md,png} and
# speed_gpu_compiled.{json,md,png} to $OUT (the device tool's folder) or else benchmarks/. About 10 minutes on an
# H200 (ANCHORS.md: full ~0.6 s/step at 512 frames); `vin:k2` is the smallest context the shipped model holds its
# figures with (benchmarks/results.md).
#   bash benchmarks/gpu_speed.sh [extra vin bench speed options, e.g. --frames 64,256]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks}"
run() {  # $1: file stem; the rest: extra options
    local stem="$1"; shift
    PYTHONPATH=src python -m vin bench speed --config configs/paper.yaml --device cuda --dtype bf16 \
        --strategies full,vin,vin:k2,vin:shared --frames 64,128,256,512,1024 --warmup 2 --repeats 5 \
        --json "$out/$stem.json" --markdown "$out/$stem.md" --plot "$out/$stem.png" "$@"
}
run speed_gpu "$@"
run speed_gpu_compiled --compile "$@"
