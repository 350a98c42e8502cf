#!/usr/bin/env bash
# On a lent H200 (device tool), in one call, a VIN on Wan2.1 at paper scale:
#  1. always: a randomly initialised Wan2.1-T2V-1.3B (the real architecture; a step's cost does not depend on the
#     weights), one denoising step of full (the whole video through Wan) vs vin (VIN read + all chunks in parallel)
#     at 81, 161, 321 and 641 frames, 480x832, bf16 -> $OUT/wan_speed_gpu.json (about 3 minutes);
#  2. with WAN_DIR (a local Wan2.1-T2V-1.3B-Diffusers folder, as downloaded: model_index.json, transformer/, vae/,
#     text_encoder/, tokenizer/, scheduler/), VIDEOS (a folder of videos) and CAPTIONS (a .jsonl of {"path", "caption"},
#     paths relative to VIDEOS): fine-tune the VIN (+ LoRA) for STEPS steps on the folder (its vae/ is
#     the autoencoder), then generate 257 frames (65 latent) of 832x480 from a text PROMPT with the folder's UMT5 and UniPC.
#   here:   bash benchmarks/gpu_wheels.sh
#   device: run(command="bash benchmarks/wan_gpu.sh", carry=[".whl"], timeout_s=590)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
STEPS=${STEPS:-200}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=src:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
python3 benchmarks/wan_speed.py --device cuda --frames 81,161,321,641 --json "$OUT/wan_speed_gpu.json"
if [ -n "${WAN_DIR:-}" ]; then
  python3 -m vin train configs/wan2.1-t2v-1.3b.yaml model.backbone="$WAN_DIR" \
      data.root="$VIDEOS" data.captions="$CAPTIONS" train.steps="$STEPS" train.device=cuda train.out_dir=/tmp/runs/wan --quiet
  python3 -m vin generate --checkpoint /tmp/runs/wan --prompt "${PROMPT:-a red kite over a beach at sunset}" --guidance 5 \
      --frames 257 --steps 30 --device cuda --dtype bf16 --json --out "$OUT/wan_257.mp4"
  cp /tmp/runs/wan/{config.json,diffusion_pytorch_model.safetensors,log.jsonl,loss.png,summary.json} "$OUT/"
fi
