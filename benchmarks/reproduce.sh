#!/usr/bin/env bash
# Regenerates benchmarks/results from the shipped checkpoints: the comparison of every strategy at 64-512
# frames (tables in markdown + JSON, plots), the paper's ablation, a side-by-side GIF and the VIN read probe.
#
#   benchmarks/reproduce.sh [CHECKPOINT] [OUT_DIR]      # defaults: the shipped model, benchmarks/results
#   SEEDS=0,1,2,3 STEPS=25 FRAMES=64,128,256,512 FULL=full JOBS=2 benchmarks/reproduce.sh
#
# FULL: the full-attention model that samples the `full` rows (default: the shipped one, trained on whole
# clips with the same data and budget; FULL=none samples `full` with CHECKPOINT itself).
# JOBS=2 runs the evaluation as two processes of one thread each (about 1.6x faster on 2 cores) and
# combines their reports with `vin report`. Seeds must be held out (below 2**20; training draws above).
# Lengths are multiples of the chunk size; the shipped model has chunks of 16 frames and saw clips of at
# most 4 chunks (64 frames), so 128-512 frames are past the longest training clip.
set -euo pipefail
CKPT=${1:-default}
OUT=${2:-benchmarks/results}
SEEDS=${SEEDS:-0,1,2,3,4,5,6,7}
STEPS=${STEPS:-10}
FRAMES=${FRAMES:-64,128,256,512}
FULL=${FULL:-full}
JOBS=${JOBS:-2}
ABLATION_FRAMES=${ABLATION_FRAMES:-128}
mkdir -p "$OUT/parts"
HERE="$(dirname "$0")"
FULL_ARGS=()
if [ "$FULL" != none ]; then FULL_ARGS=(--full-checkpoint "$FULL"); fi
COMMON=(--checkpoint "$CKPT" --seeds "$SEEDS" --steps "$STEPS" --feature-size 112 --quiet)
if [ "$JOBS" -gt 1 ]; then THREADS=1; else THREADS=0; fi

# 1. Every strategy at every length, with the real procedural videos as reference (two balanced halves).
HALVES=("data,vin,full,autoregressive,fifo" "independent,overlap,freenoise,spectral")
if [ "$JOBS" -gt 1 ]; then
    PIDS=()
    for i in 0 1; do
        vin eval "${COMMON[@]}" "${FULL_ARGS[@]}" --threads 1 --frames "$FRAMES" --strategies "${HALVES[$i]}" \
            --json "$OUT/parts/strategies_$i.json" > /dev/null &
        PIDS+=($!)
    done
    for pid in "${PIDS[@]}"; do wait "$pid"; done  # a failed half fails the script
else
    for i in 0 1; do
        vin eval "${COMMON[@]}" "${FULL_ARGS[@]}" --frames "$FRAMES" --strategies "${HALVES[$i]}" \
            --json "$OUT/parts/strategies_$i.json" > /dev/null
    done
fi
vin report "$OUT"/parts/strategies_0.json "$OUT"/parts/strategies_1.json --title "vin eval: $CKPT (full: $FULL), $STEPS steps, seeds $SEEDS" \
    --json "$OUT/strategies.json" --markdown "$OUT/strategies.md" --plot "$OUT/strategies.png" > /dev/null
vin report "$OUT/strategies.json" --plot "$OUT/mawe.png" --plot-metrics mawe --title "MAWE against length ($STEPS steps, seeds $SEEDS)" > /dev/null
vin report "$OUT/strategies.json" --frames "${FRAMES%%,*},${FRAMES##*,}" --markdown "$OUT/compact.md" \
    --table-metrics mawe,scene_cuts,subject_consistency,background_consistency,dynamic_degree,boundary_jump,background_drift,sprite_color_changes,flops,seconds > /dev/null

# 2. The paper's ablation: global tokens, fusion (every step, the default; the paper's first 40% of the steps; the
#    last 40%; none), context length, keyframe interval; beside it,
#    one 512-frame video of each chunk-based method side by side (red ticks mark chunk starts) and the probe.
ABLATION_ARGS=("${COMMON[@]}" --threads "$THREADS" --frames "$ABLATION_FRAMES" --json "$OUT/ablation.json" --markdown "$OUT/ablation.md"
    --strategies vin,vin:global_tokens=chunk,vin:global_tokens=none,vin:fusion_fraction=0.4,vin:fusion_fraction=0.4:fusion_schedule=late,vin:fusion_schedule=none,vin:k2,vin:k4,vin:k6,vin:keyframe_stride=2,vin:keyframe_stride=8)
ABLATION=""
if [ "$JOBS" -gt 1 ]; then
    vin eval "${ABLATION_ARGS[@]}" > /dev/null &
    ABLATION=$!
else
    vin eval "${ABLATION_ARGS[@]}" > /dev/null
fi
export OMP_NUM_THREADS=$THREADS
if [ "$THREADS" = 0 ]; then unset OMP_NUM_THREADS; fi
python "$HERE/side_by_side.py" --checkpoint "$CKPT" --frames "${SIDE_FRAMES:-512}" --steps "$STEPS" --seed 0 --upscale 2 \
    --strategies vin,independent,autoregressive --out "$OUT/side_by_side.gif"
python "$HERE/vin_read_probe.py" --checkpoint "$CKPT" --seeds 0,1 --frames 128 --steps "$STEPS" --json "$OUT/probe.json" > /dev/null
if [ -n "$ABLATION" ]; then wait "$ABLATION"; fi
echo "results in $OUT"
