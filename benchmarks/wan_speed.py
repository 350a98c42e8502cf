"""One denoising step of `full` (the whole latent video through Wan2.1 at once) against `vin` (the VIN read,
then every chunk's window through the same Wan as one batch), on a randomly initialised Wan of the real
architecture: the paper's speed figure on a real video DiT. No weights are needed: a step's cost depends on
the architecture and the sizes only.

    python benchmarks/wan_speed.py --device cuda --json benchmarks/wan_speed_gpu.json   # Wan2.1-T2V-1.3B, 480x832
    python benchmarks/wan_speed.py --tiny --frames 17,33                                # a CPU smoke run

Latent frames: Wan's VAE makes 1 + (frames - 1) / 4 of them; the chunked model needs a whole number of
chunks, so each length is rounded up to a multiple of the chunk (`--chunk-frames` latent frames) and both
strategies are timed on that same latent video. Times are CUDA events after a warm-up (CPU: perf_counter).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

WAN_1_3B = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
                text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True, eps=1e-6,
                rope_max_seq_len=1024)  # fmt: skip  (the config.json of Wan2.1-T2V-1.3B-Diffusers/transformer)
TINY = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
            text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2, rope_max_seq_len=1024)  # fmt: skip


def build(tiny: bool, device: torch.device, dtype: torch.dtype, chunk: int, context: int, tokens: int):
    """A random Wan of the real (or a tiny) architecture with a VIN adapter, on `device` in `dtype`."""
    import diffusers

    from vin.backbones.wan import WanVIN
    from vin.config import ModelConfig

    torch.manual_seed(0)
    with torch.device(device):
        wan = diffusers.WanTransformer3DModel(**(TINY if tiny else WAN_1_3B))
        config = ModelConfig(vin_tokens=tokens, width=64 if tiny else 512, heads=4 if tiny else 8, chunk_frames=chunk,
                             context_frames=context, keyframe_stride=1)  # fmt: skip
        model = WanVIN(wan, config)
    return model.to(device, dtype).eval()


def median_s(fn, device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds of `fn()` after `warmup` calls (`vin.bench.speed.time_ms`: CUDA events on a GPU)."""
    from vin.bench.speed import time_ms

    times = sorted(time_ms(fn, device, warmup, repeats))
    return times[len(times) // 2] / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default="81,161,321,641", help="video frames (Wan's VAE: 4 per latent frame after the first)")
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--chunk-frames", type=int, default=5, help="F, latent frames per chunk (5: 20 video frames)")
    ap.add_argument("--context-frames", type=int, default=2, help="K, latent context frames per window")
    ap.add_argument("--vin-tokens", type=int, default=64)
    ap.add_argument("--text-tokens", type=int, default=512, help="prompt length (Wan pads its prompts to 512)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-full-tokens", type=int, default=400_000, help="skip full above this many tokens per call")
    ap.add_argument("--tiny", action="store_true", help="a 2-block Wan at 64x64 pixels: checks the script on a CPU")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if args.tiny:
        args.height = args.width = 64
        args.text_tokens = 8
    f, k = args.chunk_frames, args.context_frames
    model = build(args.tiny, device, dtype, f, k, args.vin_tokens)
    h, w = args.height // 8, args.width // 8  # Wan's VAE: 8x spatial
    per_frame = (h // 2) * (w // 2)
    text_dim = model.config.text_dim
    rows = []
    for frames in (int(v) for v in args.frames.split(",")):
        latent = math.ceil((1 + (frames - 1) // 4) / f) * f
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, model.config.in_channels, latent, h, w, generator=g).to(device, dtype)
        prompt = torch.randn(1, args.text_tokens, text_dim, generator=g).to(device, dtype)
        t = torch.full((1,), 700.0, device=device)
        row = {"video_frames": frames, "latent_frames": latent, "full_tokens": latent * per_frame,
               "vin_windows": latent // f, "vin_tokens_per_window": (f + k) * per_frame}  # fmt: skip
        with torch.inference_mode():
            row["vin_s"] = median_s(lambda: model(x, t, prompt), device, args.warmup, args.repeats)
            if row["full_tokens"] <= args.max_full_tokens:
                row["full_s"] = median_s(lambda: model.backbone(x, t, prompt, return_dict=False), device, args.warmup, args.repeats)
                row["speedup"] = row["full_s"] / row["vin_s"]
        if device.type == "cuda":
            row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "dtype": str(dtype).split(".")[-1],
              "architecture": "tiny" if args.tiny else "Wan2.1-T2V-1.3B (random weights)", "height": args.height,
              "width": args.width, "chunk_frames": f, "context_frames": k, "vin_tokens": args.vin_tokens,
              "text_tokens": args.text_tokens, "torch": torch.__version__, "rows": rows}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
