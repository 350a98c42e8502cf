"""The Video Interface Network: a fixed set of tokens that reads the whole noisy video once per step.

Read / process, as in RIN: `M` learned encoding tokens attend, in ONE cross-attention, to the
tokens of every `s`-th frame (the keyframes) of the whole noisy video; a few self-attention blocks
then process `[Z ; condition tokens]` under timestep conditioning. The output `Z_t` has shape
(B, M, D) whatever the video's length, so the cost of the read grows linearly with the number of
keyframes and the DiT's cost per chunk does not grow at all.

The read may be biased towards space (`read_locality: spatial`): the M tokens sit on a grid over the
frame, and each head's logits gain -beta_h * |p_token - p_key|^2 (p in [0, 1]^2, beta_h learned; one head
starts global). A token then reads its own region of every keyframe from the first step, a summary
of that region's content over the whole video (the background, sprites averaged out), instead of an
almost uniform average of everything, which carries little and trains slowly. The bias is added as
extra query/key channels, never as an (M x keys) matrix.

Keyframes carry no absolute time: either no temporal position at all (`none`, the keyframes as a
set) or their position relative to the video's length (`relative`, in [0, 1)). Neither grows with
the video, so any number of chunks works.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .attention import Attention, DiTBlock, Mlp
from .embed import level_offset, point_sincos, sincos, spatial_sincos

KEYFRAME_POSITIONS = ("none", "relative")
READ_LOCALITY = ("none", "spatial")
TOKEN_POSITIONS = ("none", "spatial")

# Combines partial reads across processes: (output (B, H, M, Dh), log-sum-exp (B, H, M)) -> merged output.
Merge = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def token_grid(m: int) -> tuple[int, int]:
    """(rows, columns) of the grid the M tokens sit on: the most nearly square factorisation, rows <= columns."""
    rows = max(d for d in range(1, int(m**0.5) + 1) if m % d == 0)
    return rows, m // rows


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
        keyframe_positions: str = "none",
        read_locality: str = "none",
        token_positions: str = "none",
        latent_std: float = 0.02,
    ) -> None:
        super().__init__()
        if keyframe_positions not in KEYFRAME_POSITIONS:
            raise ValueError(f"keyframe_positions must be one of {KEYFRAME_POSITIONS}, got {keyframe_positions!r}")
        if read_locality not in READ_LOCALITY:
            raise ValueError(f"read_locality must be one of {READ_LOCALITY}, got {read_locality!r}")
        if token_positions not in TOKEN_POSITIONS or (token_positions == "spatial" and read_locality != "spatial"):
            raise ValueError(f"token_positions must be one of {TOKEN_POSITIONS} ('spatial' needs read_locality=spatial)")
        self.read_locality = read_locality
        self.token_positions = token_positions
        self.heads = heads
        self.grid = token_grid(num_tokens)
        if read_locality == "spatial":  # softplus(raw) = beta per head; head 0 starts (almost) global
            beta = 2.0 * max(self.grid) ** 2  # about e^-2 one grid cell away
            raw = torch.full((heads,), beta + math.log(-math.expm1(-beta)))  # softplus^-1(beta), stable
            raw[0] = -12.0
            self.read_sharpness = nn.Parameter(raw)
        self.dim = dim
        self.keyframe_positions = keyframe_positions
        self.latents = nn.Parameter(torch.randn(num_tokens, dim) * latent_std)  # Z_init: (M, D)
        self.key_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_hw, stride=patch_hw)
        self.norm_latents = nn.LayerNorm(dim, eps=1e-6)
        self.norm_keys = nn.LayerNorm(dim, eps=1e-6)
        self.read = Attention(dim, heads)  # the one cross-attention over all keyframe tokens
        self.norm_read_mlp = nn.LayerNorm(dim, eps=1e-6)
        self.read_mlp = Mlp(dim, mlp_ratio)
        self.process = nn.ModuleList(DiTBlock(dim, heads, mlp_ratio) for _ in range(process_blocks))
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)

    def grid_points(self, m: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the M tokens sit, in [0, 1]^2: rows (M,), columns (M,) of the token grid over an h x w frame."""
        gh, gw = self.grid if h <= w else self.grid[::-1]
        qy, qx = torch.meshgrid((torch.arange(gh, device=device) + 0.5) / gh, (torch.arange(gw, device=device) + 0.5) / gw, indexing="ij")
        return qy.flatten()[:m], qx.flatten()[:m]

    def output_positions(self, m: int, h: int, w: int, device: torch.device) -> torch.Tensor:
        """The DiT's spatial position embedding at each token's place on an h x w patch grid: (M, D).

        Added to Z_t (`token_positions: spatial`), a token that read one region looks, to the DiT, like a
        patch token of that region: chunk tokens find it with the same attention that finds their context.
        """
        qy, qx = self.grid_points(m, h, w, device)
        return point_sincos(self.dim, qy * h - 0.5, qx * w - 0.5)

    def read_bias(self, m: int, h: int, w: int, keyframes: int, device: torch.device):
        """Extra query/key channels (1, H, M, 3), (1, H, keyframes*h*w, 3) for the spatial read bias, or None."""
        if self.read_locality == "none":
            return None
        qy, qx = self.grid_points(m, h, w, device)
        ky, kx = torch.meshgrid((torch.arange(h, device=device) + 0.5) / h, (torch.arange(w, device=device) + 0.5) / w, indexing="ij")
        pq = torch.stack([qy, qx], -1)  # (M, 2)
        pk = torch.stack([ky.flatten(), kx.flatten()], -1).repeat(keyframes, 1)  # (keyframes*S, 2)
        beta = F.softplus(self.read_sharpness)[:, None, None]  # (H, 1, 1)
        scale = (self.dim // self.heads) ** -0.5
        # -beta |pq - pk|^2 = 2 beta pq.pk - beta |pk|^2 - beta |pq|^2; the last term is the same for every key
        q_extra = torch.cat([2 * beta * pq, -beta.expand(-1, m, 1)], -1) / scale  # (H, M, 3)
        k_extra = torch.cat([pk, (pk**2).sum(-1, keepdim=True)], -1).expand(self.heads, -1, -1)  # (H, S', 3)
        return q_extra[None], k_extra[None]

    def keyframe_tokens(
        self,
        x: torch.Tensor,
        stride: int,
        frame_offset: int = 0,
        total_frames: int | None = None,
        offsets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Tokens of every `stride`-th frame of the video: (B, C, T, H, W) -> (B, Tk * S, D).

        `x` may be a slice of a longer video that starts at frame `frame_offset` and has `total_frames`
        frames in all (a rank's share): keyframes are the frames whose index in the whole video is a
        multiple of `stride`, and relative positions are taken in the whole video. `offsets` (B, T):
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
        if self.keyframe_positions == "relative":
            total = -(-(total_frames or x.shape[2]) // stride)  # keyframes in the whole video
            index = torch.arange(tk, device=x.device, dtype=torch.float32) + (frame_offset + first) // stride
            pos = pos + sincos(self.dim, index / total * 100.0)[None, :, None]  # position in [0, 1), scaled
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
        total_frames: int | None = None,
        merge: Merge | None = None,
        offsets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # x: (B, C, T, H, W) noisy video, c: (B, D) timestep (+label) embedding,
        # offsets: (B, T) each frame's time minus the video's (a timestep per chunk), or None,
        # cond_tokens: (B, Nc, D) or None  ->  Z_t: (B, M, D).
        # With `merge`, x is one rank's share of the video: the read runs over its keyframes only and
        # `merge(out, lse)` combines the partial reads of all ranks (see vin.parallel).
        keys = self.norm_keys(self.keyframe_tokens(x, stride, frame_offset, total_frames, offsets))
        z = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        queries = self.norm_latents(z)
        h, w = x.shape[3] // self.key_embed.stride[0], x.shape[4] // self.key_embed.stride[1]
        extra = self.read_bias(z.shape[1], h, w, keys.shape[1] // (h * w), x.device)
        if merge is None:
            z = z + self.read(queries, keys, extra)
        else:
            z = z + self.read.finish(merge(*self.read.partial(queries, keys, extra)))
        z = z + self.read_mlp(self.norm_read_mlp(z))
        m = z.shape[1]
        if cond_tokens is not None:
            z = torch.cat([z, cond_tokens], dim=1)
        for block in self.process:
            z = block(z, c)
        z = self.norm_out(z[:, :m])
        if self.token_positions == "spatial":
            z = z + self.output_positions(m, h, w, x.device).to(z.dtype)
        return z
