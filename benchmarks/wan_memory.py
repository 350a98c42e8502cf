"""Memory of one sampling step and one training step of a VIN on Wan2.1-T2V (1.3B and 14B) at 480p and 720p,
estimated on the `meta` device: the real architectures, no weights, no GPU.

    python benchmarks/wan_memory.py --json benchmarks/results/wan_memory.json

Estimated, not measured: every tensor the step creates is followed on `meta` (`vin.bench.memory.LiveTensorMemory`
with meta=True) and the most bytes alive at once is the step's peak, added to the weights and optimizer state
held throughout. Attention is counted as a fused kernel (FlashAttention / cuDNN, what SDPA runs in bf16 on an
H100/H200): its output, and in training the tensors its backward keeps, never the (L, L) score matrix. Not
counted: the allocator's caching and fragmentation, kernels' workspaces, the CUDA context (together typically
1-3 GB and 5-15% more), and autocast's bf16 copies of the adapter's fp32 weights (megabytes).

- sampling: the backbone in bf16 (what diffusers keeps in fp32 stays so), the adapter in fp32, both guidance
  branches as one batch (B = 2), no gradients. `full` is the whole latent video through Wan at once; `vin` the
  VIN read and every chunk's window (K + F latent frames) as one batch, or (`vin_window_batch4_gb`,
  `vin generate --window-batch 4`) four windows a DiT call. UMT5-XXL (the text encoder) is listed
  apart: it encodes the prompts once, before the first step, and can leave the GPU before sampling.
- training: `vin` is the shipped recipe (configs/wan2.1-t2v-1.3b.yaml: 8 windows a step, clips of up to 4
  chunks, LoRA rank 16 on every attention projection, activation checkpointing): its step does not depend on
  the length of the videos it will generate (`vin_train4_gb`: 4 windows a micro-batch, one clip of 4 chunks,
  the least the recipe allows; train.grad_accum=2 keeps the batch). For contrast, `full` is LoRA fine-tuning of Wan alone on one
  whole clip of that length (rank 16, gradient checkpointing). Held throughout: the frozen backbone in bf16;
  what trains in fp32 with its gradient, AdamW's two moments and the EMA (5 copies).
Latent frames: 1 + (frames - 1) / 4; vin's lengths are rounded up to whole chunks (81 -> 25 latent frames,
97 video frames), as benchmarks/wan_flops.py counts them.
"""

from __future__ import annotations

import argparse
import json
import math
from contextlib import contextmanager
from pathlib import Path

import torch

from wan_speed import WAN_1_3B

WAN = {"1.3B": WAN_1_3B, "14B": dict(WAN_1_3B, num_attention_heads=40, ffn_dim=13824, num_layers=40)}  # Wan2.1-T2V-14B's config.json
SIZES = {"480p": (480, 832), "720p": (720, 1280)}
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                feed_forward_proj="gated-gelu")  # fmt: skip  (Wan2.1's text_encoder/config.json)
GB = 2**30


class FusedAttention(torch.autograd.Function):
    """What a fused attention kernel allocates: its output; its backward keeps q, k, v and the output (and a
    (B, H, L) log-sum-exp, counted in fp32) and returns three gradients. No (L, L) matrix."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = q.new_empty(q.shape[:-1] + v.shape[-1:])
        lse = q.new_empty(q.shape[:-1], dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        q, k, v, _, _ = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


@contextmanager
def fused_attention():
    """F.scaled_dot_product_attention as a fused kernel's memory (diffusers' and vin's attention call it)."""
    original = torch.nn.functional.scaled_dot_product_attention

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        return FusedAttention.apply(query, key, value)

    torch.nn.functional.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        torch.nn.functional.scaled_dot_product_attention = original


def nbytes(params) -> int:
    return sum(p.numel() * p.element_size() for p in params)


def backbone(name: str):
    """Wan on `meta` in bf16, what diffusers keeps in fp32 in fp32 (as `vin.backbones.wan.load_backbone` holds it)."""
    import diffusers

    with torch.device("meta"):
        wan = diffusers.WanTransformer3DModel(**WAN[name])
    keep = set(wan._keep_in_fp32_modules or ())
    for pname, p in wan.named_parameters():
        p.data = p.data.to(torch.float32 if keep & set(pname.split(".")) else torch.bfloat16)
    return wan.requires_grad_(False).eval()


def vin_model(wan, lora: int, f: int, k: int):
    from vin.backbones.wan import WanVIN
    from vin.config import ModelConfig

    with torch.device("meta"):
        return WanVIN(wan, ModelConfig(vin_tokens=64, width=512, heads=8, vin_process_blocks=2, chunk_frames=f,
                                       context_frames=k, keyframe_stride=1), lora)  # fmt: skip


def peak(fn) -> int:
    """The most bytes of tensors `fn` creates that are alive at once (on meta)."""
    from vin.bench.memory import LiveTensorMemory

    with fused_attention(), LiveTensorMemory(meta=True) as mem:
        fn()
    return mem.peak


def grouped(model, x: torch.Tensor, t: torch.Tensor, prompt: torch.Tensor, f: int, k: int, size: int) -> torch.Tensor:
    """vin's windows in DiT calls of `size` windows (`window_batch`), joined as `windows_in_groups` joins them."""
    z = model.read_interface(x, t, prompt, 1)
    n = x.shape[2] // f
    return torch.cat([model.denoise_chunks(x, t, prompt, z, f, k, chunks=slice(a, min(a + size, n))) for a in range(0, n, size)], 1)


def sampling(name: str, size: tuple[int, int], frames: int, f: int, k: int) -> dict:
    """Peak bytes of one guided sampling step (B = 2) of full and vin, with what stays resident."""
    wan = backbone(name)
    model = vin_model(wan, 0, f, k).eval()
    h, w = size[0] // 8, size[1] // 8
    latent = 1 + (frames - 1) // 4
    padded = math.ceil(latent / f) * f
    t = torch.full((2,), 500.0, device="meta")
    prompt = torch.zeros(2, 512, 4096, device="meta", dtype=torch.bfloat16)
    weights = nbytes(wan.parameters())
    adapter = nbytes(p for n, p in model.named_parameters() if not n.startswith("backbone."))
    with torch.no_grad():
        xf = torch.zeros(2, 16, latent, h, w, device="meta", dtype=torch.bfloat16)
        full = peak(lambda: wan(xf, t, prompt, return_dict=False))
        xv = torch.zeros(2, 16, padded, h, w, device="meta")
        vin = peak(lambda: model.denoise_chunks(xv, t, prompt, model.read_interface(xv, t, prompt, 1), f, k))
        vin_groups = peak(lambda: grouped(model, xv, t, prompt, f, k, 4))
    state = 2 * 16 * padded * h * w * 4 * 4  # the sampler's latents, noise, prediction and scheduler state, fp32
    return {"full_gb": (weights + full + state) / GB, "vin_gb": (weights + adapter + vin + state) / GB,
            "vin_window_batch4_gb": (weights + adapter + vin_groups + state) / GB,
            "weights_gb": weights / GB, "latent_frames": latent, "vin_latent_frames": padded}  # fmt: skip


def held_for_training(model) -> int:
    """Bytes held across a training step: frozen weights as they are, what trains x5 (fp32 weight, gradient,
    AdamW's two moments, EMA)."""
    params = list(model.parameters())
    return nbytes(p for p in params if not p.requires_grad) + 5 * nbytes(p for p in params if p.requires_grad)


def training_vin(name: str, size: tuple[int, int], f: int, k: int, windows: int = 8, chunks: int = 4) -> dict:
    """One training step of the shipped recipe: `windows` windows as windows / chunks clips of `chunks` chunks."""
    model = vin_model(backbone(name), 16, f, k).train()
    model.checkpoint_activations()
    h, w = size[0] // 8, size[1] // 8
    clips = windows // chunks
    x = torch.zeros(clips, 16, chunks * f, h, w, device="meta")
    t = torch.full((clips,), 0.5, device="meta")
    prompt = torch.zeros(clips, 512, 4096, device="meta")

    def step():
        model(x, t, prompt).float().pow(2).mean().backward()

    return (held_for_training(model) + peak(step)) / GB


def training_full(name: str, size: tuple[int, int], frames: int) -> float:
    """GB of one LoRA fine-tuning step of Wan alone on a whole clip of `frames` frames (gradient checkpointing)."""
    from vin.backbones.wan import add_lora

    wan = backbone(name)
    with torch.device("meta"):
        add_lora(wan, 16)
    wan.enable_gradient_checkpointing()
    wan.train()
    h, w = size[0] // 8, size[1] // 8
    x = torch.zeros(1, 16, 1 + (frames - 1) // 4, h, w, device="meta", dtype=torch.bfloat16)
    t = torch.full((1,), 500.0, device="meta")
    prompt = torch.zeros(1, 512, 4096, device="meta", dtype=torch.bfloat16)

    def step():
        wan(x, t, prompt, return_dict=False)[0].float().pow(2).mean().backward()

    return (held_for_training(wan) + peak(step)) / GB


def umt5_gb() -> float:
    from transformers import UMT5Config, UMT5EncoderModel

    with torch.device("meta"):
        encoder = UMT5EncoderModel(UMT5Config(**UMT5_XXL))
    return sum(p.numel() for p in encoder.parameters()) * 2 / GB  # bf16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="1.3B,14B")
    ap.add_argument("--sizes", default="480p,720p")
    ap.add_argument("--frames", default="81,257")
    ap.add_argument("--chunk", default="5:2", help="F:K, latent frames per chunk and of context")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    f, k = map(int, args.chunk.split(":"))
    rows = []
    for name in args.models.split(","):
        for size_name in args.sizes.split(","):
            size = SIZES[size_name]
            trained = {"vin_train_gb": training_vin(name, size, f, k), "vin_train4_gb": training_vin(name, size, f, k, windows=4)}
            for frames in map(int, args.frames.split(",")):
                row = {"model": name, "size": size_name, "frames": frames, **sampling(name, size, frames, f, k),
                       **trained, "full_train_gb": training_full(name, size, frames)}  # fmt: skip
                rows.append({key: round(v, 1) if isinstance(v, float) else v for key, v in row.items()})
                print(rows[-1], flush=True)
    out = {"method": "meta-device estimate (benchmarks/wan_memory.py)", "chunk_frames": f, "context_frames": k,
           "umt5_xxl_gb": round(umt5_gb(), 1), "rows": rows}  # fmt: skip
    print("UMT5-XXL text encoder, bf16:", out["umt5_xxl_gb"], "GB")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
