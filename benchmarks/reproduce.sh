#!/usr/bin/env bash
# Regenerates the comparison and the ablation from one checkpoint: tables (markdown + JSON), plots, GIF.
#
#   benchmarks/reproduce.sh [CHECKPOINT] [OUT_DIR]      # defaults: the shipped model, benchmarks/results
#   SEEDS=0,1,2,3 STEPS=25 FRAMES=64,128,256,512 benchmarks/reproduce.sh
#
# Seeds must be held out (below 2**20; training draws above). Lengths are multiples of the chunk size;
# the shipped model has chunks of 16 frames and saw clips of at most 4 chunks (64 frames).
set -euo pipefail
CKPT=${1:-default}
OUT=${2:-benchmarks/results}
SEEDS=${SEEDS:-0,1,2,3,4,5,6,7}
STEPS=${STEPS:-25}
FRAMES=${FRAMES:-64,128,256,512}
THREADS=${THREADS:-0}
mkdir -p "$OUT"

# 1. Every strategy at every length, with the real procedural videos as reference.
vin eval --checkpoint "$CKPT" --strategies data,vin,full,autoregressive,independent,overlap,freenoise,spectral \
    --frames "$FRAMES" --seeds "$SEEDS" --steps "$STEPS" --threads "$THREADS" --quiet \
    --json "$OUT/strategies.json" --markdown "$OUT/strategies.md" --plot "$OUT/strategies.png"

# 2. The paper's ablation at 256 frames: global tokens, fusion schedule, context length, keyframe interval.
vin eval --checkpoint "$CKPT" --frames 256 --seeds "$SEEDS" --steps "$STEPS" --threads "$THREADS" --quiet \
    --strategies vin,vin:global_tokens=chunk,vin:global_tokens=none,vin:fusion=mid,vin:fusion=late,vin:fusion=none,vin:k2,vin:k6,vin:k8,vin:keyframe_stride=2,vin:keyframe_stride=8 \
    --json "$OUT/ablation.json" --markdown "$OUT/ablation.md"

# 3. One 512-frame video of each chunk-based method, side by side (red ticks mark chunk starts).
ARGS=(--frames 512 --steps "$STEPS" --seed 0 --strategies vin,independent,autoregressive --out "$OUT/side_by_side.gif")
if [ "$CKPT" != default ]; then ARGS+=(--checkpoint "$CKPT"); fi
python "$(dirname "$0")/side_by_side.py" "${ARGS[@]}"
echo "results in $OUT"
