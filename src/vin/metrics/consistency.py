"""VBench's subject and background consistency, and chunk-boundary jumps.

Consistency (VBench): for each frame t >= 1, the mean of its feature cosine to the first frame and to the
previous frame (each clipped at 0), averaged over t. 1.0 means every frame looks like the first.

Boundary jump: a per-pair change (frame difference, warp error, feature distance) averaged over the pairs
that cross a chunk boundary, divided by its average over the pairs inside chunks. A seam shows up as a
ratio well above 1; a smooth video is near 1. Pairs t -> t+1 cross a boundary when (t + 1) is a multiple of
the chunk length.
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-6


def vbench_consistency(features: torch.Tensor) -> float:
    """features: (T, D) with unit-norm rows. Returns the mean over t >= 1 of (cos(f_t, f_0) + cos(f_t, f_t-1)) / 2."""
    if len(features) < 2:
        return 1.0
    to_first = (features[1:] @ features[0]).clamp(min=0)
    to_prev = (features[1:] * features[:-1]).sum(dim=1).clamp(min=0)
    return float(((to_first + to_prev) / 2).mean())


def feature_steps(features: torch.Tensor) -> np.ndarray:
    """Cosine distance between consecutive frames' features: (T-1,)."""
    return (1.0 - (features[1:] * features[:-1]).sum(dim=1)).clamp(min=0).double().numpy()


def boundary_mask(pairs: int, chunk_frames: int) -> np.ndarray:
    """(pairs,) bool: pair t -> t+1 crosses a chunk boundary."""
    return (np.arange(1, pairs + 1) % chunk_frames) == 0


def boundary_jump(changes: np.ndarray, chunk_frames: int) -> float | None:
    """Mean change across chunk boundaries / mean change inside chunks; None for a single chunk."""
    mask = boundary_mask(len(changes), chunk_frames)
    if not mask.any() or mask.all():
        return None
    return float((changes[mask].mean() + EPS) / (changes[~mask].mean() + EPS))
