"""The Video Interface Network: a fixed set of tokens that reads the whole noisy video once per step.

Read / process, as in RIN: `M` learned encoding tokens attend, in ONE cross-attention, to the
tokens of every `s`-th frame (the keyframes) of the whole noisy video; a few self-attention blocks
then process `[Z ; condition tokens]` under timestep conditioning. The output `Z_t` has shape
(B, M, D) whatever the video's length, so the cost of the read grows linearly with the number of
keyframes and the DiT's cost per chunk does not grow at all.

Keyframes carry no temporal position (the keyframes as a set; only their noise level when chunks are
at different levels), so nothing grows with the video and any number of chunks works.
"""

from __future__ import annotations

from typing import Callable

import torch
from einops import rearrange
from torch import nn

from .attention import Attention, DiTBlock, Mlp
from .embed import level_offset, spatial_sincos

# Combines partial reads across processes: (output (B, H, M, Dh), log-sum-exp (B, H, M)) -> merged output.
Merge = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class VideoInterface(nn.Module):
    def __init__(
        self,
        in_channels: int,
        patch_hw: int,
        dim: int,
        heads: int,
        num_tokens: int,
        process_blocks: int,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.dim = dim
        self.latents = nn.Parameter(torch.randn(num_tokens, dim) * 0.02)  # Z_init: (M, D)
        self.key_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_hw, stride=patch_hw)
        self.norm_latents = nn.LayerNorm(dim, eps=1e-6)
        self.norm_keys = nn.LayerNorm(dim, eps=1e-6)
        self.read = Attention(dim, heads)  # the one cross-attention over all keyframe tokens
        self.norm_read_mlp = nn.LayerNorm(dim, eps=1e-6)
        self.read_mlp = Mlp(dim, mlp_ratio)
        self.process = nn.ModuleList(DiTBlock(dim, heads, mlp_ratio) for _ in range(process_blocks))
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)

    def keyframe_tokens(
        self,
        x: torch.Tensor,
        stride: int,
        frame_offset: int = 0,
        offsets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Tokens of every `stride`-th frame of the video: (B, C, T, H, W) -> (B, Tk * S, D).

        `x` may be a slice of a longer video that starts at frame `frame_offset` (a rank's share): keyframes
        are the frames whose index in the whole video is a multiple of `stride`. `offsets` (B, T):
        each frame's noise level (model time) minus the video's, added as `level_offset` features.
        """
        first = (-frame_offset) % stride
        keyframes = x[:, :, first::stride]  # (B, C, Tk, H, W)
        b, _, tk, _, _ = keyframes.shape
        h, w = x.shape[3] // self.key_embed.stride[0], x.shape[4] // self.key_embed.stride[1]
        if tk == 0:
            return x.new_zeros(b, 0, self.dim)
        tokens = self.key_embed(rearrange(keyframes, "b c t h w -> (b t) c h w"))  # (B*Tk, D, h, w)
        tokens = rearrange(tokens, "(b t) d h w -> b t (h w) d", b=b)
        pos = spatial_sincos(self.dim, h, w, x.device)[None, None]  # (1, 1, S, D)
        if offsets is not None:
            pos = pos + level_offset(self.dim, offsets[:, first::stride])[:, :, None]  # (B, Tk, 1, D)
        return (tokens + pos.to(tokens.dtype)).flatten(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        stride: int,
        cond_tokens: torch.Tensor | None = None,
        frame_offset: int = 0,
        merge: Merge | None = None,
        offsets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # x: (B, C, T, H, W) noisy video, c: (B, D) timestep (+label) embedding,
        # offsets: (B, T) each frame's time minus the video's (a timestep per chunk), or None,
        # cond_tokens: (B, Nc, D) or None  ->  Z_t: (B, M, D).
        # With `merge`, x is one rank's share of the video: the read runs over its keyframes only and
        # `merge(out, lse)` combines the partial reads of all ranks (see vin.parallel).
        keys = self.norm_keys(self.keyframe_tokens(x, stride, frame_offset, offsets))
        z = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        queries = self.norm_latents(z)
        if merge is None:
            z = z + self.read(queries, keys)
        else:
            z = z + self.read.finish(merge(*self.read.partial(queries, keys)))
        z = z + self.read_mlp(self.norm_read_mlp(z))
        m = z.shape[1]
        if cond_tokens is not None:
            z = torch.cat([z, cond_tokens], dim=1)
        for block in self.process:
            z = block(z, c)
        return self.norm_out(z[:, :m])
