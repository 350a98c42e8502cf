"""FLOPs of one denoising step of `full` (the whole latent video through Wan2.1-T2V-1.3B at once) against `vin`
(the VIN read, then every chunk's window through the same Wan as one batch), counted on the `meta` device
(`vin.flops.count_flops`: matrix products, convolutions and attention; no weights, no memory).

    python benchmarks/wan_flops.py --json benchmarks/results/wan_flops.json     # 480x832, 81-1025 frames

Latent frames: Wan's VAE makes 1 + (frames - 1) / 4 of them; the chunked model needs whole chunks, so both
strategies run on the length rounded up to a multiple of the chunk (`vin_latent_frames`), as benchmarks/wan_speed.py
times them. One guidance branch (a guided step costs twice as much with either strategy).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from wan_speed import WAN_1_3B


def count(model: torch.nn.Module, fn) -> int:
    from vin.flops import count_flops, frozen

    with torch.no_grad(), frozen(model), count_flops() as counted:
        fn()
    return counted.total


def main() -> None:
    import diffusers

    from vin.backbones.wan import WanVIN
    from vin.config import ModelConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default="81,257,513,1025")
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--chunks", default="5:2,16:4", help="F:K pairs, latent frames per chunk and of context")
    ap.add_argument("--vin-tokens", type=int, default=64)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    h, w = args.height // 8, args.width // 8
    prompt = torch.zeros(1, 512, WAN_1_3B["text_dim"], device="meta")
    with torch.device("meta"):
        wan = diffusers.WanTransformer3DModel(**WAN_1_3B)
    rows = []
    t = torch.full((1,), 500.0, device="meta")
    for n in map(int, args.frames.split(",")):
        latent = 1 + (n - 1) // 4
        for pair in args.chunks.split(","):
            f, k = map(int, pair.split(":"))
            with torch.device("meta"):
                model = WanVIN(wan, ModelConfig(vin_tokens=args.vin_tokens, width=512, heads=8, chunk_frames=f,
                                                context_frames=k, keyframe_stride=1)).eval()  # fmt: skip
            padded = math.ceil(latent / f) * f  # both strategies on the same latent video of whole chunks
            xv = torch.zeros(1, 16, padded, h, w, device="meta")
            full = count(wan, lambda: wan(xv, t, prompt, return_dict=False))
            vin = count(model, lambda: model.denoise_chunks(xv, t, prompt, model.read_interface(xv, t, prompt, 1), f, k))
            rows.append({"frames": n, "latent_frames": latent, "vin_latent_frames": padded, "chunk_frames": f,
                         "context_frames": k, "full_tflops": round(full / 1e12, 2), "vin_tflops": round(vin / 1e12, 2),
                         "vin_over_full": round(vin / full, 3)})  # fmt: skip
            print(rows[-1], flush=True)
    if args.json:
        args.json.write_text(json.dumps({"height": args.height, "width": args.width, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
