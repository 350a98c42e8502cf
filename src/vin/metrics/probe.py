"""Is the VIN read? Measures that say whether a model's DiT uses what its encoding tokens read.

A VIN that is not read looks fine by its loss: the DiT can denoise each chunk from its own frames and
context alone and treat `Z_t` as a few constant extra tokens. These numbers tell the two apart:

- `loss_gap`: the denoising loss of multi-chunk clips with each clip's `Z_t` (read from the whole clip),
  with Z read from each chunk alone (`own_chunk`), and with ANOTHER clip's Z (`other_clip`). `gap` is
  other_clip / global - 1: 0 means the DiT ignores what the VIN reads. With `first_sigma`, chunk 0 sits
  at that (lower) noise level and the loss is taken over the other chunks: how much a cleaner chunk
  helps the rest through the tokens (the "fast and slow" premise);
- `token_similarity`: the mean cosine similarity between the M tokens of Z (1.0: they collapsed into
  one vector, which carries no more than one token);
- `read_entropy`: the entropy of the read's attention over the keyframe tokens, as a fraction of its
  maximum (1.0: every token reads a uniform average of everything).

Training logs `loss_gap` at sigma 0.85 on held-out clips every `train.save_every` steps; the benchmark
`benchmarks/vin_read_probe.py` reports all of them together with generated videos.
"""

from __future__ import annotations

import math

import torch

from ..diffusion.objective import Objective
from ..model.protocol import VideoModel
from ..model.windows import assemble

PROBE_SIGMA = 0.85  # the noise level the training log and the project's target use (DESIGN.md, section 4)


def _model_time(sigma: float, objective: str) -> float:
    """A noise level in (0, 1] as the model's time: sigma * 1000 for flow, the nearest DDPM step otherwise."""
    return sigma * 1000.0 if objective == "flow" else float(min(999, round(sigma * 1000)))


@torch.no_grad()
def loss_gap(
    model: VideoModel,
    clips: torch.Tensor,
    sigma: float = PROBE_SIGMA,
    generator: torch.Generator | None = None,
    first_sigma: float | None = None,
    labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """Denoising loss of clips (B, C, N*F, H, W), B >= 2, N >= 2, with Z from the clip, each chunk, another clip.

    `labels`: the clips' condition for a model that needs one (a Wan backbone's prompt embeddings (B, L, D));
    the read swaps Z only, each clip keeps its own condition.

    Returns {"global", "own_chunk", "other_clip", "gap"}; `gap` = other_clip / global - 1.
    """
    cfg = model.config  # the model's own geometry: the probe measures the model as trained
    f, k, stride = cfg.chunk_frames, cfg.context_frames, cfg.keyframe_stride
    b, n = clips.shape[0], clips.shape[2] // f
    if b < 2 or n < 2 or clips.shape[2] % f:
        raise ValueError(f"the loss gap needs >= 2 clips of >= 2 whole chunks of {f} frames, got {tuple(clips.shape)}")
    objective = Objective(cfg.objective)
    clips = clips.to(model.device, model.dtype)
    labels = labels.to(model.device) if labels is not None else None
    noise = torch.randn(clips.shape, generator=generator).to(clips)
    t = torch.full((b, n), _model_time(sigma, cfg.objective), device=clips.device)
    if first_sigma is not None:
        t[:, 0] = _model_time(first_sigma, cfg.objective)
    x = objective.add_noise(clips, noise, t)
    target = objective.target(clips, noise, t).float()
    scored = slice(f, None) if first_sigma is not None else slice(None)  # the noisy chunks

    def loss(z: torch.Tensor) -> float:
        pred = assemble(model.denoise_chunks(x, t, labels, z, f, k), k, fuse=False).float()
        return float(((pred - target)[:, :, scored] ** 2).mean())

    z = model.read_interface(x, t, None, stride)
    own = torch.stack([model.read_interface(x[:, :, i * f : (i + 1) * f], t[:, i], None, stride) for i in range(n)], 1)
    out = {"global": loss(z), "own_chunk": loss(own), "other_clip": loss(z.roll(1, 0))}
    out["gap"] = out["other_clip"] / out["global"] - 1
    return out


@torch.no_grad()
def token_similarity(model: VideoModel, clips: torch.Tensor, sigma: float = PROBE_SIGMA,
                     generator: torch.Generator | None = None) -> float:  # fmt: skip
    """Mean cosine similarity between distinct tokens of Z_t for clips (B, C, T, H, W); 1.0: collapsed."""
    objective = Objective(model.config.objective)
    clips = clips.to(model.device, model.dtype)
    t = torch.full((clips.shape[0],), _model_time(sigma, model.config.objective), device=clips.device)
    x = objective.add_noise(clips, torch.randn(clips.shape, generator=generator).to(clips), t)
    z = model.read_interface(x, t, None, model.config.keyframe_stride)
    z = torch.nn.functional.normalize(z.float(), dim=-1)  # (B, M, D)
    m = z.shape[1]
    sim = z @ z.transpose(1, 2)  # (B, M, M)
    return float((sim.sum((1, 2)) - m).mean() / (m * (m - 1)))


@torch.no_grad()
def read_entropy(model: VideoModel, clip: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> float:
    """Entropy of the read's attention over the keyframe tokens of one clip (C, T, H, W), as a fraction of the maximum."""
    it, stride = model.interface, model.config.keyframe_stride
    objective = Objective(model.config.objective)
    clip = clip.to(model.device, model.dtype)[None]
    t = torch.full((1,), _model_time(sigma, model.config.objective), device=clip.device)
    x = objective.add_noise(clip, torch.randn(clip.shape, generator=generator).to(clip), t)
    keys = it.norm_keys(it.keyframe_tokens(x, stride))
    q, k, _ = it.read._qkv(it.norm_latents(it.latents[None]), keys)
    p = torch.softmax((q @ k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5, dim=-1)  # (1, H, M, S)
    return float((-(p * p.clamp_min(1e-12).log()).sum(-1) / math.log(p.shape[-1])).mean())
