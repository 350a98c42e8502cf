"""Chunks and their windows, for every model kind: the window of chunk i is the last K frames of chunk i-1
(its local context), then its own F frames. How windows are cut from a video, what time each of their
frames has, and how window predictions become one video prediction (`assemble`, with early fusion)."""

from __future__ import annotations

import torch
from einops import rearrange

from ..errors import VinError


def read_times(timestep: torch.Tensor, frames: int, merge=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The VIN read's time: (B,) as it is, or (B, N) one per chunk -> (their mean (B,), each frame's offset
    from it (B, T)), so keyframe tokens can tell clean frames from noisy ones."""
    if timestep.ndim == 1:
        return timestep, None
    if merge is not None:
        raise VinError("a timestep per chunk is read in one process (chunk-parallel ranks share one timestep)")
    n = timestep.shape[1]
    if frames % n:
        raise VinError(f"a timestep per chunk: {frames} frames do not split into {n} chunks")
    reference = timestep.mean(1)  # (B,)
    return reference, timestep.repeat_interleave(frames // n, dim=1) - reference[:, None]


def chunk_times(timestep: torch.Tensor, chunks: int) -> torch.Tensor:
    """Model times per chunk: (B,) one per video, or (B, N) one per chunk (diffusion forcing) -> (B, N)."""
    if timestep.ndim == 1:
        return timestep[:, None].expand(-1, chunks)
    if timestep.ndim != 2 or timestep.shape[1] != chunks:
        raise VinError(f"timestep must be (B,) or (B, {chunks}): one per video or one per chunk; got {tuple(timestep.shape)}")
    return timestep


def window_times(times: torch.Tensor, chunk_frames: int, context_frames: int) -> torch.Tensor:
    """Chunk times (B, N) -> the time of every frame of each window (B, N, K+F): context frames are at
    their owner's (the previous chunk's) time; chunk 0's placeholder context at its own."""
    own = times[:, :, None].expand(-1, -1, chunk_frames)
    if context_frames == 0:
        return own
    previous = torch.cat([times[:, :1], times[:, :-1]], dim=1)
    return torch.cat([previous[:, :, None].expand(-1, -1, context_frames), own], dim=2)


def window_pixels(
    x: torch.Tensor, chunk_frames: int, context_frames: int, context: torch.Tensor | None = None
) -> torch.Tensor:
    """The frames of each chunk's window: (B, C, N*F, H, W) -> (B, N, C, K+F, H, W).

    Chunk 0's context is `context` (B, C, K, H, W) when given, else zeros (its placeholder has no pixels).
    """
    k = context_frames
    chunks = rearrange(x, "b c (n f) h w -> b n c f h w", f=chunk_frames)
    if k == 0:
        return chunks
    first = context.unsqueeze(1).to(chunks.dtype) if context is not None else torch.zeros_like(chunks[:, :1, :, :k])
    return torch.cat([torch.cat([first, chunks[:, :-1, :, chunk_frames - k :]], dim=1), chunks], dim=3)


def assemble(
    windows: torch.Tensor, context_frames: int, fuse: bool, next_context: torch.Tensor | None = None
) -> torch.Tensor:
    """Window predictions (B, N, C, K+F, H, W) -> one video prediction (B, C, N*F, H, W).

    Every frame has its owner's prediction. The last K frames of chunk i are also predicted as the
    context of chunk i+1; with `fuse` (early fusion) the two are blended linearly across the
    overlap: the owner's weight falls from K/(K+1) to 1/(K+1) towards the next chunk.
    `next_context` (B, C, K, H, W): the context prediction of the chunk after the last one, when that
    chunk lives elsewhere (another rank).
    """
    k = context_frames
    own = windows[:, :, :, k:].clone()  # (B, N, C, F, H, W)
    if not fuse or k == 0:
        return rearrange(own, "b n c f h w -> b c (n f) h w")
    others = windows[:, 1:, :, :k]  # the context predictions of chunks 1..N-1
    if next_context is not None:
        others = torch.cat([others, next_context.unsqueeze(1).to(others.dtype)], dim=1)
    m = others.shape[1]
    if m > 0:
        w_next = (torch.arange(1, k + 1, device=windows.device, dtype=windows.dtype) / (k + 1)).view(1, 1, 1, k, 1, 1)
        own[:, :m, :, -k:] = (1 - w_next) * own[:, :m, :, -k:] + w_next * others
    return rearrange(own, "b n c f h w -> b c (n f) h w")
