"""`vin.generate`: a long video from a trained model, chunk-parallel with the VIN."""

from __future__ import annotations

import torch

from ..diffusion.sampling import sample_video
from ..errors import VinError
from ..io import to_uint8
from ..model.vin import VINModel, check_geometry


def check_request(
    model: VINModel,
    frames: int,
    steps: int,
    label: int | None,
    guidance: float,
    fusion_fraction: float,
    chunk_frames: int | None,
    context_frames: int | None,
    keyframe_stride: int | None,
) -> None:
    """Everything that can be wrong with a request, checked before any work starts."""
    cfg = model.config
    check_geometry(
        frames,
        chunk_frames or cfg.chunk_frames,
        cfg.context_frames if context_frames is None else context_frames,
        cfg.patch_t,
        keyframe_stride or cfg.keyframe_stride,
    )
    if steps < 1:
        raise VinError(f"steps must be at least 1, got {steps}")
    if not 0.0 <= fusion_fraction <= 1.0:
        raise VinError(f"fusion fraction must be in [0, 1], got {fusion_fraction}")
    if label is not None:
        if cfg.num_classes == 0:
            raise VinError("this model is unconditional: drop the label")
        if not 0 <= label < cfg.num_classes:
            raise VinError(f"label must be in [0, {cfg.num_classes - 1}], got {label}")
    if guidance != 1.0 and (cfg.num_classes == 0 or label is None):
        raise VinError("classifier-free guidance needs a class-conditional model and a label; use guidance 1")


def generate(
    model: VINModel,
    frames: int,
    steps: int = 25,
    seed: int = 0,
    label: int | None = None,
    guidance: float = 1.0,
    fusion_fraction: float = 0.4,
    chunk_frames: int | None = None,
    context_frames: int | None = None,
    keyframe_stride: int | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Generates one video of `frames` frames: (T, H, W, 3) uint8. The same seed gives the same video."""
    check_request(model, frames, steps, label, guidance, fusion_fraction, chunk_frames, context_frames, keyframe_stride)
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor([label]) if label is not None else None
    video = sample_video(
        model, frames, steps, generator, 1, labels, guidance, fusion_fraction,
        chunk_frames, context_frames, keyframe_stride, progress=progress,
    )  # fmt: skip
    return torch.from_numpy(to_uint8(video[0]))
