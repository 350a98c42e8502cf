"""Does a trained VIN read the video? Six numbers that say whether its tokens carry global information.

    python benchmarks/vin_read_probe.py [--checkpoint DIR] [--seeds 0,1] [--frames 128] [--steps 15] [--json OUT]

1. read entropy: the entropy of the read's attention over the keyframe tokens of a real procedural clip,
   as a fraction of the maximum (1.0 = a uniform average of everything, which carries little);
2. Z sensitivity: |Z(video a) - Z(video b)| / |Z(video a)| for two different clips at the same noise;
3. global vs chunk: mean |video with global VIN tokens - video whose chunks each read only themselves|
   (0..255): near 0 means the model makes no use of what other chunks hold;
4. background drift of the `vin` videos (procedural ground truth; real videos: 0);
5. loss gap: the denoising loss of 4-chunk clips with each chunk's Z read from the whole clip, from its
   own chunk only, and from ANOTHER clip (at several noise levels): equal losses mean the DiT ignores what
   the VIN reads (the tokens then serve as constant extra tokens, not as memory);
6. context gap, the same test for the other path between chunks: the loss of chunk 1 of 2-chunk clips
   with its K context frames from the clip itself, from ANOTHER clip, or noise only (Z held fixed).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace

import numpy as np
import torch

from vin import generate, load_model
from vin.data.synthetic import SyntheticConfig, SyntheticVideos
from vin.io import checkpoint_path
from vin.metrics.procedural import procedural_checks
from vin.metrics.suite import training_data_config


@torch.no_grad()
def read_statistics(model, clips: list[torch.Tensor], sigmas: list[float], generator: torch.Generator) -> dict:
    it, stride = model.interface, model.config.keyframe_stride
    entropy, sensitivity = {}, {}
    for sigma in sigmas:
        noise = torch.randn(clips[0].shape, generator=generator)
        xs = [((1 - sigma) * c + sigma * noise)[None] for c in clips]  # the flow objective's path
        t = torch.tensor([sigma * 1000.0])
        keys = it.norm_keys(it.keyframe_tokens(xs[0], stride))
        queries = it.norm_latents(it.latents[None])
        q, k, _ = it.read._qkv(queries, keys)
        h, w = xs[0].shape[3] // it.key_embed.stride[0], xs[0].shape[4] // it.key_embed.stride[1]
        extra = it.read_bias(q.shape[2], h, w, keys.shape[1] // (h * w), keys.device) if hasattr(it, "read_bias") else None
        scale = q.shape[-1] ** -0.5
        q, k = it.read._augment(q, k, extra) if extra is not None else (q, k)
        p = torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1)  # (1, H, M, S)
        entropy[sigma] = float((-(p * p.clamp_min(1e-12).log()).sum(-1) / math.log(p.shape[-1])).mean())
        za, zb = (model.read_interface(x, t, None, stride) for x in xs[:2])
        sensitivity[sigma] = float((za - zb).norm() / za.norm())
    return {"read_entropy": entropy, "z_sensitivity": sensitivity}


@torch.no_grad()
def loss_gap(model, clips: torch.Tensor, sigmas: list[float], generator: torch.Generator) -> dict:
    """Flow-matching loss of clips (B, C, 4F, H, W) with Z from the whole clip / own chunk / another clip."""
    from vin.model.vin import assemble

    cfg = model.config
    f, n = cfg.chunk_frames, clips.shape[2] // cfg.chunk_frames
    out = {}
    for sigma in sigmas:
        noise = torch.randn(clips.shape, generator=generator)
        x = (1 - sigma) * clips + sigma * noise
        t = torch.full((clips.shape[0],), sigma * 1000.0)

        def loss(z):
            pred = assemble(model.denoise_chunks(x, t, None, z), cfg.context_frames, fuse=False)
            return float(((pred - (noise - clips)) ** 2).mean())

        z = model.read_interface(x, t)
        own = torch.stack([model.read_interface(x[:, :, i * f : (i + 1) * f], t) for i in range(n)], 1)
        out[sigma] = {"global": loss(z), "own_chunk": loss(own), "other_clip": loss(z.roll(1, 0))}
    return out


@torch.no_grad()
def context_gap(model, clips: torch.Tensor, sigmas: list[float], generator: torch.Generator) -> dict:
    """Flow-matching loss of chunk 1 of clips (B, C, 2F, H, W) with its context from the clip / another clip / noise."""
    from vin.model.vin import assemble

    f, k = model.config.chunk_frames, model.config.context_frames
    out = {}
    for sigma in sigmas:
        noise = torch.randn(clips.shape, generator=generator)
        x = (1 - sigma) * clips + sigma * noise
        t = torch.full((clips.shape[0],), sigma * 1000.0)
        z = model.read_interface(x, t)  # held fixed: only the context differs

        def loss(xx):
            pred = assemble(model.denoise_chunks(xx, t, None, z), k, fuse=False)[:, :, f:]
            return float(((pred - (noise - clips)[:, :, f:]) ** 2).mean())

        other, blank = x.clone(), x.clone()
        other[:, :, f - k : f] = x.roll(1, 0)[:, :, f - k : f]
        blank[:, :, f - k : f] = sigma * torch.randn(x[:, :, f - k : f].shape, generator=generator)
        out[sigma] = {"own_context": loss(x), "other_clip_context": loss(other), "noise_context": loss(blank)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    path = checkpoint_path(args.checkpoint)
    model = load_model(path)
    size = model.config.sample_size
    data = SyntheticVideos(replace(training_data_config(path) or SyntheticConfig(), height=size, width=size))
    clip_frames = 4 * model.config.chunk_frames
    clips = [torch.from_numpy(data.video(s, clip_frames).frames).permute(3, 0, 1, 2).float() / 127.5 - 1 for s in (101, 102)]
    result = read_statistics(model, clips, [0.2, 0.5, 0.8], torch.Generator().manual_seed(0))
    batch = torch.stack([torch.from_numpy(data.video(s, clip_frames).frames).permute(3, 0, 1, 2).float() / 127.5 - 1
                         for s in range(200, 206)])  # fmt: skip
    result["loss_gap"] = loss_gap(model, batch, [0.3, 0.6, 0.8, 0.95], torch.Generator().manual_seed(1))
    if model.config.context_frames > 0:
        result["context_gap"] = context_gap(model, batch[:, :, : 2 * model.config.chunk_frames], [0.3, 0.6, 0.8, 0.95],
                                            torch.Generator().manual_seed(2))  # fmt: skip
    diffs, drifts = [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        a = generate(model, args.frames, args.steps, seed, "vin").video.numpy().astype(np.float32)
        b = generate(model, args.frames, args.steps, seed, "vin", global_tokens="chunk").video.numpy().astype(np.float32)
        diffs.append(float(np.abs(a - b).mean()))
        drifts.append(procedural_checks(a.astype(np.uint8), model.config.chunk_frames)["background_drift"])
    result.update(global_vs_chunk=float(np.mean(diffs)), background_drift=float(np.mean(drifts)),
                  frames=args.frames, steps=args.steps, seeds=args.seeds, checkpoint=args.checkpoint or "default")  # fmt: skip
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
