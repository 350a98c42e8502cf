"""Does a trained VIN read the video? The numbers that say whether its tokens carry global information.

    python benchmarks/vin_read_probe.py [--checkpoint DIR] [--seeds 0,1] [--frames 128] [--steps 15] [--json OUT]

On held-out procedural clips (seeds below 2**20 are never trained on):
1. loss gap (`vin.metrics.probe.loss_gap`): the denoising loss of 4-chunk clips with each clip's Z, with Z
   read from each chunk alone, and with ANOTHER clip's Z, at several noise levels (one for all chunks);
   `gap` = other_clip / global - 1, 0 when the DiT ignores what the VIN reads. Target: >= 5% at 0.85;
2. the same with chunk 0 cleaner (sigma 0.2) and the loss over chunks 1-3: what a clean chunk tells the
   others through the tokens (what `--lead` sampling relies on);
3. context gap: the loss of chunk 1 of 2-chunk clips with its K context frames from the clip itself,
   from ANOTHER clip, or noise only (Z held fixed): the other path between chunks;
4. token similarity: mean cosine similarity of Z's M tokens (1.0: collapsed into one vector);
5. read entropy: of the read's attention over the keyframe tokens, as a fraction of the maximum;
6. global vs chunk: mean |vin video - the same with `global_tokens=chunk`| (0..255), and the
   background drift of both (procedural ground truth; data: 0).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch

from vin import generate, load_model
from vin.data.synthetic import SyntheticConfig, SyntheticVideos
from vin.checkpoint import checkpoint_path
from vin.metrics.probe import loss_gap, read_entropy, token_similarity
from vin.metrics.procedural import procedural_checks
from vin.metrics.suite import training_data_config
from vin.model.windows import assemble

SIGMAS = (0.3, 0.6, 0.85, 0.95)


@torch.no_grad()
def context_gap(model, clips: torch.Tensor, sigmas, generator: torch.Generator) -> dict:
    """Flow-matching loss of chunk 1 of clips (B, C, 2F, H, W) with its context from the clip / another clip / noise."""
    f, k = model.config.chunk_frames, model.config.context_frames
    out = {}
    for sigma in sigmas:
        noise = torch.randn(clips.shape, generator=generator)
        x = (1 - sigma) * clips + sigma * noise
        t = torch.full((clips.shape[0],), sigma * 1000.0)
        z = model.read_interface(x, t, None, model.config.keyframe_stride)  # held fixed: only the context differs

        def loss(xx):
            pred = assemble(model.denoise_chunks(xx, t, None, z, f, k), k, fuse=False)[:, :, f:]
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
    size, f = model.config.sample_size, model.config.chunk_frames
    data = SyntheticVideos(replace(training_data_config(path) or SyntheticConfig(), height=size, width=size))
    batch = torch.stack([data.clip(s, 4 * f)[0] for s in range(200, 208)])  # 8 held-out clips of 4 chunks
    result = {
        "loss_gap": {s: loss_gap(model, batch, s, torch.Generator().manual_seed(1)) for s in SIGMAS},
        "loss_gap_chunk0_clean": {s: loss_gap(model, batch, s, torch.Generator().manual_seed(1), first_sigma=0.2)
                                  for s in (0.85, 0.95)},  # fmt: skip
        "token_similarity": token_similarity(model, batch, 0.85, torch.Generator().manual_seed(3)),
        "read_entropy": {s: read_entropy(model, batch[0], s, torch.Generator().manual_seed(4)) for s in (0.2, 0.5, 0.85)},
    }
    if model.config.context_frames > 0:
        result["context_gap"] = context_gap(model, batch[:, :, : 2 * f], SIGMAS, torch.Generator().manual_seed(2))
    diffs, drifts, drifts_chunk = [], [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        a = generate(model, args.frames, args.steps, seed, "vin").video.numpy()
        b = generate(model, args.frames, args.steps, seed, "vin", global_tokens="chunk").video.numpy()
        diffs.append(float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()))
        drifts.append(procedural_checks(a, f)["background_drift"])
        drifts_chunk.append(procedural_checks(b, f)["background_drift"])
    result.update(global_vs_chunk=float(np.mean(diffs)), background_drift=float(np.mean(drifts)),
                  background_drift_chunk_tokens=float(np.mean(drifts_chunk)), frames=args.frames, steps=args.steps,
                  seeds=args.seeds, checkpoint=args.checkpoint or "default")  # fmt: skip
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
