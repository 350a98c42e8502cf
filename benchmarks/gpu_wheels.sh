#!/usr/bin/env bash
# Here, before a device call: the wheels the H200 image lacks (it has torch, einops, safetensors, numpy,
# pillow, tqdm, click, pyyaml, huggingface_hub, opencv), into .whl/ (git-ignored); carry ".whl" in the call.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .git/info && grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    diffusers==0.42.1 omegaconf==2.4.0 antlr4-python3-runtime==4.13.2 importlib_metadata zipp av==18.1.0
ls -la .whl
