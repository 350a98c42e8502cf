"""Attention and MLP layers shared by the DiT and the VIN.

Everything goes through `scaled_dot_product_attention`, so GPUs get flash / cuDNN kernels and
CPUs the fused kernel. Queries and keys are RMS-normalised per head (QK-norm), which keeps small
models stable at high learning rates.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class Attention(nn.Module):
    """Multi-head attention. Self-attention when `context` is None, cross-attention otherwise."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        context_dim = context_dim or dim
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(context_dim, 2 * dim)
        self.q_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.proj = nn.Linear(dim, dim)

    def _qkv(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (B, H, L, Dh), keys and values (B, H, S, Dh). The norms run on the projections' own layout
        (B, L, H, Dh) and only then are heads moved forward, as views: the same numbers as norming after the move,
        without the copies a norm over permuted rows makes (measured on the CPU: a vin step at 512 frames 1504 -> 1422 ms)."""
        q = self.q_norm(self.to_q(x).unflatten(-1, (self.heads, -1))).transpose(1, 2)
        k, v = self.to_kv(context).unflatten(-1, (2, self.heads, -1)).unbind(2)  # (B, S, H, Dh) each
        return q, self.k_norm(k).transpose(1, 2), v.transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, L, D), context: (B, S, Dc)
        q, k, v = self._qkv(x, x if context is None else context)
        out = F.scaled_dot_product_attention(q, k, v, scale=q.shape[-1] ** -0.5)
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))

    def partial(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention over a part of the context: (normalised output (B, H, L, Dh), log-sum-exp (B, H, L)).

        Parts merged by `merge_partials` give exactly the attention over the whole context; the merged
        output then goes through `finish`. An empty part gives zeros and a log-sum-exp of -inf.
        """
        q, k, v = self._qkv(x, context)
        if k.shape[2] == 0:
            return q.new_zeros(q.shape[:-1] + (v.shape[-1],)), q.new_full(q.shape[:-1], float("-inf"))
        scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, L, S)
        lse = torch.logsumexp(scores, dim=-1)
        return torch.softmax(scores, dim=-1) @ v, lse

    def banded(self, x: torch.Tensor, own: int, borrow: int, shared: torch.Tensor) -> torch.Tensor:
        """Self-attention banded by chunk: each chunk also attends to its predecessor's last `borrow` tokens.

        x: (B, N, G, L, D), N chunks of a video in order, G independent groups per chunk (1 for 3D
        attention, the spatial positions for temporal attention). Chunk i's queries attend to their own L
        keys/values and to the keys/values of tokens `own-borrow .. own-1` of chunk i-1, taken from this
        same pass (nothing is recomputed). Chunk 0 attends to a learned placeholder instead.
        shared: (3, D) = placeholder key, placeholder value, and a key offset that marks borrowed keys.
        Returns (B, N, G, L, D).
        """
        b, n, g, length, d = x.shape
        flat = x.flatten(0, 2)
        q, k, v = self._qkv(flat, flat)  # (B*N*G, H, L, Dh)
        hd = (self.heads, 1, d // self.heads)
        place_k, place_v, offset = (p.view(hd).to(k.dtype) for p in shared)
        k, v = k.unflatten(0, (b, n, g)), v.unflatten(0, (b, n, g))  # (B, N, G, H, L, Dh)
        first = (b, 1, g, self.heads, borrow, d // self.heads)
        lent_k = torch.cat([place_k.expand(first), k[:, :-1, :, :, own - borrow : own] + offset], dim=1)
        lent_v = torch.cat([place_v.expand(first), v[:, :-1, :, :, own - borrow : own]], dim=1)
        keys = torch.cat([lent_k, k], dim=4).flatten(0, 2)  # (B*N*G, H, borrow + L, Dh)
        values = torch.cat([lent_v, v], dim=4).flatten(0, 2)
        out = F.scaled_dot_product_attention(q, keys, values)
        return self.proj(rearrange(out, "w h l d -> w l (h d)")).unflatten(0, (b, n, g))

    def finish(self, out: torch.Tensor) -> torch.Tensor:
        """Merged head outputs (B, H, L, Dh) -> (B, L, D)."""
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))


def merge_partials(outs: list[torch.Tensor], lses: list[torch.Tensor]) -> torch.Tensor:
    """Merges attention over disjoint parts of a context: softmax-weighted by each part's log-sum-exp."""
    lse = torch.logsumexp(torch.stack(lses), dim=0)  # (B, H, L)
    return sum(torch.exp(part - lse).unsqueeze(-1) * out for out, part in zip(outs, lses))


class Mlp(nn.Module):
    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation; shift/scale are per sample: (B, D) against x: (B, L, D)."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


# Replaces a block's self-attention: (block, normalised and modulated tokens (B, L, D)) -> (B, L, D).
Attend = Callable[["DiTBlock", torch.Tensor], torch.Tensor]


class DiTBlock(nn.Module):
    """A DiT block with adaLN-Zero conditioning and an optional cross-attention to VIN tokens.

    With `temporal` the block is factorised as in Open-Sora's STDiT: `attn` runs within each frame
    (the caller's `attend` does the reshaping) and a second residual branch `attn_temporal` runs
    across frames at each spatial position (the caller's `attend_temporal`); both share the
    adaLN shift/scale/gate of the attention branch.
    At initialisation every residual branch is gated to zero, so the block is the identity.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, cross: bool = False, temporal: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.temporal = temporal
        if temporal:
            self.norm_temporal = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.attn_temporal = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, mlp_ratio)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.cross = cross
        if cross:
            self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
            self.cross_attn = Attention(dim, heads)

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        z: torch.Tensor | None = None,
        attend: Callable[[torch.Tensor], torch.Tensor] | None = None,
        attend_temporal: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        # x: (B, L, D) tokens, c: (B, D) conditioning, z: (B, M, D) VIN tokens for `cross`;
        # attend: replaces self.attn (strategies that change who attends to whom, banded or spatial attention)
        # attend_temporal: the temporal branch of a factorised block, (B, L, D) -> (B, L, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift_msa, scale_msa)
        x = x + gate_msa.unsqueeze(1) * (self.attn(h) if attend is None else attend(h))
        if self.temporal:
            if attend_temporal is None:
                raise ValueError("a factorised block needs attend_temporal: the frame layout of its tokens")
            x = x + gate_msa.unsqueeze(1) * attend_temporal(modulate(self.norm_temporal(x), shift_msa, scale_msa))
        if self.cross:
            x = x + self.cross_attn(self.norm_cross(x), z)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x

    def zero_init(self) -> None:
        nn.init.zeros_(self.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.adaLN_modulation[-1].bias)
        if self.cross:
            nn.init.zeros_(self.cross_attn.proj.weight)
            nn.init.zeros_(self.cross_attn.proj.bias)
