#!/usr/bin/env bash
# On a lent H200 (device tool), in one call: trains side by side on the one GPU (bf16 autocast, larger batches),
# each stopped cleanly by SIGTERM after MINUTES, and brings the exported EMA weights and logs back under $OUT/NAME:
#   default  the default VIN recipe (configs/small.yaml)       full  the full-attention baseline
#   cond     the class-conditional recipe (issue 23's prompt travel: configs/small_cond.yaml)
#   cont     the default recipe trained to continue too (train.init_prob=0.5: issue 23's continuation)
#   here:   bash benchmarks/gpu_wheels.sh
#   device: run(command="bash benchmarks/train_gpu.sh", carry=[".whl"], timeout_s=590)
# Then, here: check both with benchmarks/vin_read_probe.py and vin eval before copying them into
# src/vin/checkpoints/ (train.init_from=<folder> continues one on the CPU).
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-8}
WINDOWS=${WINDOWS:-64}  # chunks per step (8 on the CPU)
LR=${LR:-1e-3}
OUT=${OUT:-/tmp/out}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=src:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
common="train.device=cuda train.windows_per_step=$WINDOWS train.lr=$LR train.steps=1000000 train.save_every=500 train.log_every=50"
timeout -s TERM "${MINUTES}m" python3 -m vin train configs/small.yaml $common train.out_dir=/tmp/runs/default --quiet > /tmp/default.log 2>&1 &
timeout -s TERM "${MINUTES}m" python3 -m vin train configs/small_full.yaml $common train.out_dir=/tmp/runs/full --quiet > /tmp/full.log 2>&1 &
timeout -s TERM "${MINUTES}m" python3 -m vin train configs/small_cond.yaml $common train.out_dir=/tmp/runs/cond --quiet > /tmp/cond.log 2>&1 &
timeout -s TERM "${MINUTES}m" python3 -m vin train configs/small.yaml $common train.init_prob=0.5 train.out_dir=/tmp/runs/cont --quiet > /tmp/cont.log 2>&1 &
wait
for name in default full cond cont; do
  mkdir -p "$OUT/$name"
  tail -3 /tmp/$name.log
  cp /tmp/runs/$name/{config.json,diffusion_pytorch_model.safetensors,train.yaml,log.jsonl,loss.png,summary.json} "$OUT/$name/" 2>/dev/null
  tail -1 /tmp/runs/$name/log.jsonl
done
