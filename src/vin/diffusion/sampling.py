"""Chunk-parallel VIN sampling: every step, one VIN read of the whole video, then all chunks at once.

Early fusion: for the first `fusion_fraction` of the steps, frames predicted by two windows (a
chunk's tail and the next chunk's context) are blended linearly across the overlap; afterwards each
frame keeps its owner's prediction. The scheduler steps the whole video at once.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..model.vin import VINModel, assemble, check_geometry
from .objective import make_scheduler


@torch.no_grad()
def sample_video(
    model: VINModel,
    frames: int,
    steps: int = 25,
    generator: torch.Generator | None = None,
    batch: int = 1,
    labels: torch.Tensor | None = None,
    guidance: float = 1.0,
    fusion_fraction: float = 0.4,
    chunk_frames: int | None = None,
    context_frames: int | None = None,
    keyframe_stride: int | None = None,
    size: int | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Samples `batch` videos of `frames` frames: (B, C, T, H, W) in [-1, 1].

    The initial noise is drawn on the CPU from `generator`, so a seed gives the same video on any device.
    """
    cfg = model.config
    chunk_frames = chunk_frames or cfg.chunk_frames
    context_frames = cfg.context_frames if context_frames is None else context_frames
    keyframe_stride = keyframe_stride or cfg.keyframe_stride
    check_geometry(frames, chunk_frames, context_frames, cfg.patch_t, keyframe_stride)
    size = size or cfg.sample_size
    device, dtype = model.device, model.dtype
    guided = guidance != 1.0 and cfg.num_classes > 0
    if labels is not None:
        labels = labels.to(device)
        null = torch.full_like(labels, cfg.num_classes)

    scheduler = make_scheduler(cfg.objective)
    scheduler.set_timesteps(steps)
    shape = (batch, cfg.in_channels, frames, size, size)
    x = torch.randn(shape, generator=generator, dtype=torch.float32).to(device) * getattr(scheduler, "init_noise_sigma", 1.0)
    fused_steps = round(fusion_fraction * steps)
    for i, t in enumerate(tqdm(scheduler.timesteps, desc="sampling", disable=not progress, leave=False)):
        x_in = (scheduler.scale_model_input(x, t) if hasattr(scheduler, "scale_model_input") else x).to(dtype)
        tt = torch.full((batch,), float(t), device=device)
        if guided:
            both = model(torch.cat([x_in, x_in]), torch.cat([tt, tt]), torch.cat([labels, null]),
                         chunk_frames, context_frames, keyframe_stride)  # fmt: skip
            cond, uncond = both.float().chunk(2)
            windows = uncond + guidance * (cond - uncond)
        else:
            windows = model(x_in, tt, labels, chunk_frames, context_frames, keyframe_stride).float()
        pred = assemble(windows, context_frames, fuse=i < fused_steps)  # (B, C, T, H, W)
        result = scheduler.step(pred, t, x, generator=generator)
        x = result.prev_sample
        if i == len(scheduler.timesteps) - 1 and getattr(result, "pred_original_sample", None) is not None:
            x = result.pred_original_sample  # DDIM stops at t=0, one small noise level short of clean
    return x.clamp(-1, 1)
