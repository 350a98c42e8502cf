"""Embeddings: 3D patches, sin-cos positions, timesteps, class labels and text embeddings."""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn


def sincos(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """Sin-cos embedding of (fractional) positions: (L,) -> (L, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    angles = positions.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return torch.nn.functional.pad(emb, (0, dim - 2 * half))


def level_offset(dim: int, delta: torch.Tensor) -> torch.Tensor:
    """Sine features of a noise-level offset (model time, -1000..1000): (...,) -> (..., dim).

    Zero exactly at offset 0, so a token at its window's own noise level is unchanged: a model that
    was trained with one noise level per clip computes the same with it. Parameter-free, for the same reason.
    """
    freqs = torch.exp(-math.log(10000.0) * torch.arange(dim, dtype=torch.float32, device=delta.device) / dim)
    return torch.sin(delta.float()[..., None] * freqs)


def spatial_sincos(dim: int, h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """2D sin-cos positions of an h x w token grid, half the channels per axis: (h*w, dim)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return point_sincos(dim, ys.flatten(), xs.flatten())


def point_sincos(dim: int, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """2D sin-cos positions of points at (fractional) rows `ys` and columns `xs` (L,): (L, dim)."""
    return torch.cat([sincos(dim // 2, ys), sincos(dim - dim // 2, xs)], dim=-1)


class PatchEmbed3D(nn.Module):
    """Cuts a video into (pt, p, p) tubelets and projects each to a token."""

    def __init__(self, in_channels: int, dim: int, patch_t: int, patch_hw: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=(patch_t, patch_hw, patch_hw), stride=(patch_t, patch_hw, patch_hw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, T, H, W) -> (B, T/pt, (H/p)*(W/p), D)
        return rearrange(self.proj(x), "b d t h w -> b t (h w) d")


class TimestepEmbedder(nn.Module):
    """Diffusion time in [0, 1000] -> a vector, through sin-cos features and an MLP (as in DiT)."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # t: (B,) -> (B, D)
        return self.mlp(sincos(self.freq_dim, t).to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """Class ids -> vectors; id `num_classes` is the null label used for classifier-free guidance."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.table(labels)


def pool_tokens(text: torch.Tensor) -> torch.Tensor:
    """Token embeddings (B, L, D) -> their mean over the real (non-zero) tokens (B, D); a prompt with a NaN stays
    NaN (the null condition). Zero rows are padding (prompts of two lengths padded for guidance)."""
    null = torch.isnan(text).any(dim=(1, 2))  # (B,)
    real = (torch.nan_to_num(text).abs().sum(-1, keepdim=True) > 0).to(text.dtype)  # (B, L, 1)
    pooled = (torch.nan_to_num(text) * real).sum(1) / real.sum(1).clamp(min=1)
    return torch.where(null[:, None], torch.full_like(pooled, float("nan")), pooled)


class TextEmbedder(nn.Module):
    """A text embedding computed offline (B, text_dim) -> a vector (B, D); None or NaN rows -> a learned null.

    The null vector is what classifier-free guidance and caption dropout use.
    """

    def __init__(self, text_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(text_dim, dim)
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, text: torch.Tensor | None, batch: int) -> torch.Tensor:
        if text is None:
            return self.null.expand(batch, -1)
        text = text.to(self.proj.weight.dtype)
        if text.ndim == 3:  # token embeddings (B, L, text_dim), as prompts come: pooled as training pools captions
            text = pool_tokens(text)
        missing = torch.isnan(text).any(dim=-1, keepdim=True)  # (B, 1): no caption, or dropped
        return torch.where(missing, self.null.to(text.dtype), self.proj(torch.nan_to_num(text)))
