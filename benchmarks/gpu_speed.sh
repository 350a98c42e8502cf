#!/usr/bin/env bash
# Paper-scale wall time on one GPU, side by side (bf16, CUDA events, warm-up first): writes
# benchmarks/speed_gpu.{json,md,png}. About 5 minutes on an H200 (ANCHORS.md: full ~0.6 s/step at 512 frames).
#   bash benchmarks/gpu_speed.sh [extra vin bench speed options, e.g. --compile]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=src python -m vin bench speed --config configs/paper.yaml --device cuda --dtype bf16 \
    --strategies full,vin:k12,vin,vin:shared,vin:shared:k12 --frames 64,128,256,512 --warmup 2 --repeats 5 \
    --json benchmarks/speed_gpu.json --markdown benchmarks/speed_gpu.md --plot benchmarks/speed_gpu.png "$@"
