"""The whole model: a video DiT that denoises every chunk in parallel, coupled to a VIN.

A video `x` of shape (B, C, T, H, W) is cut along time into `N = T / F` chunks. Chunk `i` is
denoised in a window of `K + F` frames: the last `K` frames of chunk `i-1` as local context, then
its own `F` frames (chunk 0 gets a learned placeholder as context). Temporal positions are local to
the window (context at -K..-1, own frames at 0..F-1, in latent time steps), the same for every
chunk. All `N` windows go through the DiT as ONE batch of B*N sequences; each attends only to
itself and to the VIN's tokens `Z_t`, which read the whole video once per step.

Couplings: `concat` appends Z_t's M tokens to every window's self-attention sequence (only window
tokens are decoded); `cross` adds a cross-attention to Z_t in each block.

Context (`context_mode`): `recompute` (the paper) runs each chunk's K context frames through the DiT
again inside its window; `shared` runs every chunk's own F frames only, and in each layer chunk i's
queries attend to the keys/values chunk i-1 computes for its last K frames in the same pass
(attention banded by chunk, nothing recomputed; chunk 0 gets learned placeholder keys/values).

A model with `full_frames > 0` is the full-attention baseline: it is trained on whole clips of up to
`full_frames` frames, each denoised as ONE window (no chunks, no context), and samples with the
`full` strategy only.

Attention (`attention`): `3d` attends over all tokens of a window; `factorised` (Open-Sora's STDiT)
attends within each frame, then across frames at each spatial position.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin
from einops import rearrange
from torch import nn

from ..config import ModelConfig, check_geometry
from ..errors import VinError
from ..weights import WEIGHTS_NAME, first_mismatch, read_safetensors
from .attention import Attend, Attention, DiTBlock, modulate
from .embed import LabelEmbedder, PatchEmbed3D, TextEmbedder, TimestepEmbedder, level_offset, sincos, spatial_sincos
from .interface import Merge, VideoInterface
from .protocol import VideoModel
from .windows import assemble, chunk_times, read_times, window_pixels, window_times

__all__ = ["VINModel", "WindowLayout", "assemble"]

MIN_SIGMA = 0.05  # x0 -> velocity divides by sigma; clamped as in JiT (Li & He, 2025)


class VINModel(ModelMixin, ConfigMixin, VideoModel):
    """Video DiT + Video Interface Network. Saves as config.json + diffusion_pytorch_model.safetensors."""

    config_name = "config.json"
    exposes_blocks = True  # condition, embed_windows, run_blocks, decode_windows, to_target (the spectral strategy)

    def __init__(self, config: ModelConfig | None = None, **settings) -> None:
        """`VINModel(config)` or `VINModel(width=64, ...)`: settings as `ModelConfig` declares and checks them."""
        super().__init__()
        if config is None:
            config = ModelConfig(**settings)
        elif settings:
            raise TypeError("give a ModelConfig or keyword settings, not both")
        config.check()
        self.register_to_config(**asdict(config))  # self.config: every setting, saved as config.json
        in_channels, width, depth, heads, mlp_ratio = config.in_channels, config.width, config.depth, config.heads, config.mlp_ratio
        patch_t, patch_hw, num_classes, text_dim = config.patch_t, config.patch_hw, config.num_classes, config.text_dim
        # set by vin.load_model for a model trained in an autoencoder's latent space: latents -> pixels
        self.latent_decoder = None  # vin.data.latent.LatentDecoder | None; not a module, not saved
        self.patch_embed = PatchEmbed3D(in_channels, width, patch_t, patch_hw)
        self.context_placeholder = nn.Parameter(torch.zeros(width))  # context of the first chunk
        self.t_embedder = TimestepEmbedder(width)
        self.y_embedder = LabelEmbedder(num_classes, width) if num_classes > 0 else None
        self.text_embedder = TextEmbedder(text_dim, width) if text_dim > 0 else None
        self.interface = (
            VideoInterface(in_channels, patch_hw, width, heads, config.vin_tokens, config.vin_process_blocks, mlp_ratio)
            if config.vin_tokens > 0
            else None
        )
        self.blocks = nn.ModuleList(
            DiTBlock(width, heads, mlp_ratio, cross=config.coupling == "cross", temporal=config.attention == "factorised")
            for _ in range(depth)
        )
        # shared context: per block, the placeholder key and value of chunk 0 and the offset of borrowed keys
        self.shared_context = nn.Parameter(torch.zeros(depth, 3, width)) if config.context_mode == "shared" else None
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.adaLN_out = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.proj_out = nn.Linear(width, patch_t * patch_hw * patch_hw * in_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        """DiT's initialisation: Xavier linears, zeroed adaLN gates and output (the model starts at 0)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for module in (self.patch_embed.proj,) + ((self.interface.key_embed,) if self.interface else ()):
            w = module.weight.data
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
            nn.init.zeros_(module.bias)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        if self.y_embedder is not None:
            nn.init.normal_(self.y_embedder.table.weight, std=0.02)
        if self.text_embedder is not None:
            nn.init.normal_(self.text_embedder.proj.weight, std=0.02)
        for module in self.modules():
            if isinstance(module, DiTBlock):
                module.zero_init()
        nn.init.zeros_(self.adaLN_out[-1].weight)
        nn.init.zeros_(self.adaLN_out[-1].bias)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    # ---- the model protocol: building, saving, loading, what trains (vin.model.protocol)
    @classmethod
    def resolve_config(cls, config: ModelConfig) -> ModelConfig:
        """The own DiT decides nothing beyond its settings: `config`, checked."""
        return config.check()

    @classmethod
    def build(cls, config: ModelConfig, lora_rank: int = 0, dtype: torch.dtype | None = None) -> "VINModel":
        if dtype not in (None, torch.float32):
            raise VinError("vin's own DiT has no pretrained backbone to hold in another dtype: it trains in float32")
        if lora_rank > 0:
            raise VinError("train.lora_rank adapts a pretrained backbone's attention: it needs model.backbone (a wan folder)")
        return cls(config)

    @classmethod
    def load(cls, folder: Path, config: ModelConfig, meta: dict[str, Any], device: str | torch.device,
             backbone: str | Path | None = None, dtype: torch.dtype | None = None) -> "VINModel":  # fmt: skip
        if dtype not in (None, torch.float32):
            raise VinError(f"checkpoint {folder} is vin's own DiT, which samples in float32; drop --dtype (dtype=)")
        if backbone is not None:
            raise VinError(f"checkpoint {folder} is vin's own DiT: it has no pretrained backbone to point at; drop the backbone")
        model = cls(config)
        weights = read_safetensors(folder / WEIGHTS_NAME, f"checkpoint {folder}", f" (is {WEIGHTS_NAME} complete?)")
        mismatch = first_mismatch(model.state_dict(), weights)
        if mismatch:
            raise VinError(f"checkpoint {folder} could not be loaded: its {WEIGHTS_NAME} does not match its config.json "
                           f"({mismatch}); the two files come from different models")  # fmt: skip
        model.load_state_dict(weights)
        return model.to(device).eval()

    @classmethod
    def text_encoder(cls, config: ModelConfig, device: str | torch.device):
        raise VinError("data.captions as text needs a text encoder: vin's own DiT has none; give a .safetensors of "
                       "precomputed embeddings, or a pretrained pipeline folder as model.backbone")  # fmt: skip

    def save(self, folder: Path) -> None:
        """config.json + diffusion_pytorch_model.safetensors (diffusers' `save_pretrained`), moved into `folder`
        file by file from a temporary folder beside it, so no half-written file is ever visible."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-") as tmp:
            self.save_pretrained(tmp)
            for name in os.listdir(tmp):
                os.chmod(os.path.join(tmp, name), 0o644)  # not the temporary folder's private permissions
                os.replace(os.path.join(tmp, name), folder / name)

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        return self.state_dict()  # everything trains

    def load_trained_state_dict(self, weights: dict[str, torch.Tensor]) -> None:
        mismatch = first_mismatch(self.state_dict(), weights)
        if mismatch:
            raise VinError(f"the weights do not match this model ({mismatch})")
        self.load_state_dict(weights)

    def checkpoint_activations(self) -> None:
        from torch.utils.checkpoint import checkpoint

        for block in self.blocks:
            inner = block.forward

            def forward(*args, _inner=inner, **kwargs):
                return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

            block.forward = forward

    def compile_blocks(self) -> None:
        for block in self.blocks:
            block.compile()

    @property
    def token_width(self) -> int:
        return self.config.width

    @property
    def default_scheduler(self) -> str:
        return "euler" if self.config.objective == "flow" else "ddim"

    @property
    def schedulers(self) -> tuple[str, ...]:
        return (self.default_scheduler,)

    def make_scheduler(self, name: str, clip: bool):
        from ..diffusion.objective import make_scheduler

        return make_scheduler(self.config.objective, clip, self.config.flow_shift)

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        if self.config.text_dim == 0:
            raise VinError("this model is not conditioned on text (model.text_dim=0): drop the prompt")
        raise VinError("this model has no text encoder: a text model of vin's own DiT takes precomputed embeddings "
                       "(--prompt-embeds); text prompts need a pretrained pipeline folder (model.backbone)")  # fmt: skip

    # ---- the DiT and the VIN
    def condition(self, timestep: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Timestep (B,) in [0, 1000] and optional labels -> conditioning vector (B, D).

        `labels` are class ids (B,) for a class-conditional model, text embeddings (B, text_dim) for a
        text-conditioned one (None: the null condition, a learned vector).
        """
        c = self.t_embedder(timestep)
        if self.y_embedder is not None:
            if labels is None:  # unconditional: the null label
                labels = torch.full_like(timestep, self.config.num_classes, dtype=torch.long)
            c = c + self.y_embedder(labels)
        if self.text_embedder is not None:
            c = c + self.text_embedder(labels, timestep.shape[0])
        return c

    def null_condition(self, labels: torch.Tensor) -> torch.Tensor:
        """The unconditional counterpart of `labels` for guidance: the null class id, or NaN rows (the null text embedding)."""
        if self.config.num_classes > 0:
            return torch.full_like(labels, self.config.num_classes)
        return torch.full_like(labels, float("nan"))

    def read_interface(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        labels: torch.Tensor | None,
        keyframe_stride: int,
        frame_offset: int = 0,
        merge: Merge | None = None,
    ) -> torch.Tensor | None:
        """The slow path: Z_t = VIN(keyframes of the whole noisy video). (B, C, T, H, W) -> (B, M, D).

        `timestep` (B,) is the video's time, or (B, N) one per chunk (diffusion forcing): the VIN is then
        conditioned on their mean and every keyframe token carries its offset from it, so the read can
        tell clean frames from noisy ones.
        For a video spread over processes, `x` is this rank's share (starting at frame `frame_offset`)
        and `merge` combines the partial reads (see `vin.parallel.allreduce_merge`).
        """
        if self.interface is None:
            return None
        timestep, offsets = read_times(timestep, x.shape[2], merge)
        c = self.condition(timestep, labels)
        conditioned = self.y_embedder is not None or self.text_embedder is not None
        cond_tokens = c.unsqueeze(1) if conditioned else None
        return self.interface(x, c, keyframe_stride, cond_tokens, frame_offset, merge, offsets)

    def embed_windows(
        self,
        x: torch.Tensor,
        chunk_frames: int,
        context_frames: int,
        time_scale: float = 1.0,
        context: torch.Tensor | None = None,
        offsets: torch.Tensor | None = None,
        chunks: slice | None = None,
    ) -> tuple[torch.Tensor, int]:
        """Tokens of every chunk's window: (B, C, T, H, W) -> ((B*N, (K+F)/pt * S, D), N); with `chunks` (a slice
        of chunk indices) the windows of those chunks only, (B*n, ...), built from their own frames (N stays
        the video's chunk count).

        Temporal positions are local to the window: context at -K..-1, own frames at 0..F-1 (in latent
        steps, times `time_scale`; a scale below 1 squeezes a long window into the trained range).
        The first chunk's context is `context` (B, C, K, H, W), the frames before `x` when `x` is a
        part of a longer video, or else a learned placeholder.
        `offsets` (B, N, (K+F)/pt): each latent frame's time minus its window's (context frames of a chunk
        at another noise level, with a timestep per chunk), added as `level_offset` features.
        """
        cfg = self.config
        f, k = chunk_frames, context_frames
        b, _, t, h, w = x.shape
        n = check_geometry(t, f, k, cfg.patch_t, cfg.keyframe_stride)
        if h % cfg.patch_hw or w % cfg.patch_hw:
            raise VinError(f"frame size {h}x{w} must be a multiple of the spatial patch size {cfg.patch_hw}")
        fl, kl = f // cfg.patch_t, k // cfg.patch_t
        tokens = self.patch_embed(x)  # (B, T/pt, S, D)
        s, d = tokens.shape[2], tokens.shape[3]
        tokens = rearrange(tokens, "b (n f) s d -> b n f s d", n=n)
        a, e, _ = (chunks or slice(None)).indices(n)  # the windows built: chunks a..e-1
        if kl > 0:
            before = tokens[:, max(a - 1, 0) : e - 1, fl - kl :]  # the context of chunks max(a, 1)..e-1
            if a == 0:
                if context is not None:
                    first = self.patch_embed(context.to(tokens.dtype)).unsqueeze(1)  # (B, 1, Kl, S, D)
                else:
                    first = self.context_placeholder.to(tokens.dtype).expand(b, 1, kl, s, d)
                before = torch.cat([first, before], dim=1)  # (B, e-a, Kl, S, D)
            tokens = torch.cat([before, tokens[:, a:e]], dim=2)  # (B, e-a, Kl+Fl, S, D)
        else:
            tokens = tokens[:, a:e]
        if offsets is not None:
            tokens = tokens + level_offset(d, offsets[:, a:e])[:, :, :, None].to(tokens.dtype)
        tpos = sincos(d, torch.arange(-kl, fl, device=x.device) * time_scale)[:, None]  # (Kl+Fl, 1, D)
        spos = spatial_sincos(d, h // cfg.patch_hw, w // cfg.patch_hw, x.device)[None]  # (1, S, D)
        return rearrange(tokens + (tpos + spos).to(tokens.dtype), "b n f s d -> (b n) (f s) d"), n

    def run_blocks(
        self,
        tokens: torch.Tensor,
        c: torch.Tensor,
        z: torch.Tensor | None,
        attend: Attend | None = None,
        layout: WindowLayout | None = None,
    ) -> torch.Tensor:
        """The DiT blocks over windows: tokens (W, L, D), c (W, D), z (W, M, D) or None -> (W, L, D).

        `attend(block, x)` may replace a block's self-attention (the spectral strategy does).
        `layout` says how the tokens fall into frames and chunks: factorised attention and shared
        context need it.
        """
        length = tokens.shape[1]
        if self.config.coupling == "concat" and z is not None:
            tokens = torch.cat([tokens, z], dim=1)
        factorised = self.config.attention == "factorised"
        shared = layout is not None and layout.borrow_frames > 0
        if (factorised or shared) and attend is not None:
            raise VinError("a strategy that replaces attention cannot run factorised attention or shared context")
        if factorised and layout is None:
            raise VinError("factorised attention needs the frame layout of the tokens")
        for i, block in enumerate(self.blocks):
            spatial = None if attend is None else lambda h, block=block: attend(block, h)
            temporal = None
            if factorised:
                spatial = lambda h, block=block: layout.spatial(block.attn, h)  # noqa: E731
                lent = self.shared_context[i] if shared else None
                temporal = lambda h, block=block, lent=lent: layout.temporal(block.attn_temporal, h, lent)  # noqa: E731
            elif shared:
                spatial = lambda h, block=block, i=i: layout.banded(block.attn, h, length, self.shared_context[i])  # noqa: E731
            tokens = block(tokens, c, z, spatial, temporal)
        return tokens[:, :length]

    def decode_windows(self, tokens: torch.Tensor, c: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
        """Tokens (B*N, L, D) -> pixels of each window (B, N, C, L/S * pt, H, W)."""
        cfg = self.config
        shift, scale = self.adaLN_out(c).chunk(2, dim=-1)
        out = self.proj_out(modulate(self.norm_out(tokens), shift, scale))
        return rearrange(
            out,
            "(b n) (f hh ww) (pt ph pw c) -> b n c (f pt) (hh ph) (ww pw)",
            b=batch, hh=height // cfg.patch_hw, ww=width // cfg.patch_hw, pt=cfg.patch_t, ph=cfg.patch_hw, pw=cfg.patch_hw,
        )  # fmt: skip

    def denoise_chunks(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        labels: torch.Tensor | None,
        z: torch.Tensor | None,
        chunk_frames: int,
        context_frames: int,
        time_scale: float = 1.0,
        chunks: slice | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The fast path: every chunk's window through the DiT as one batch.

        x: (B, C, T, H, W); timestep: (B,), or (B, N) one per chunk (diffusion forcing: each window is
        conditioned on its own chunk's time, its context frames carry their offset from it);
        z: (B, M, D) shared by all chunks, (B, N, M, D) one per chunk, or None.
        Returns predictions for each window (B, N, C, K+F, H, W); with `chunks` (a slice of chunk
        indices) only those windows are computed and returned. `context`: see `embed_windows`.
        """
        cfg = self.config
        f, k = chunk_frames, context_frames
        b, _, t, h, w = x.shape
        n = check_geometry(t, f, k, cfg.patch_t, cfg.keyframe_stride)
        shared = cfg.context_mode == "shared" and k > 0  # windows hold only their own frames; context is borrowed per layer
        if shared and context is not None:
            raise VinError("model.context_mode=shared borrows context inside one pass: it takes no context "
                           "frames from outside the video (chunk-parallel ranks need context_mode=recompute)")  # fmt: skip
        times, frame_times, offsets = self._chunk_times(timestep, n, f, k, shared)
        tokens, n = self.embed_windows(x, f, 0 if shared else k, time_scale, context, offsets, None if shared else chunks)
        if z is not None:
            z = z if z.ndim == 4 else z.unsqueeze(1).expand(-1, n, -1, -1)  # (B, N, M, D)
        if chunks is not None and not shared:  # embed_windows built only these chunks' windows
            z = z[:, chunks] if z is not None else None
            times = times[:, chunks] if times is not None else None
            n = tokens.shape[0] // b
        if times is not None:  # (B*N, D): each window conditioned on its own chunk's time
            c = self.condition(times.flatten(), None if labels is None else labels.repeat_interleave(times.shape[1], dim=0))
        else:
            c = self.condition(timestep, labels).repeat_interleave(n, dim=0)  # (B*N, D)
        s = (h // cfg.patch_hw) * (w // cfg.patch_hw)
        layout = WindowLayout(b, n, tokens.shape[1] // s, s, k // cfg.patch_t if shared else 0)
        out = self.decode_windows(self.run_blocks(tokens, c, z.flatten(0, 1) if z is not None else None, layout=layout), c, b, h, w)
        if shared:  # the context frames' predictions are their owners': (B, N, C, F, ...) -> (B, N, C, K+F, ...)
            lent = torch.cat([torch.zeros_like(out[:, :1, :, :k]), out[:, :-1, :, f - k :]], dim=1)
            out = torch.cat([lent, out], dim=3)
            out = out[:, chunks] if chunks is not None else out
        if cfg.parameterization == "direct":
            return out
        pixels = window_pixels(x, f, k, context)
        if frame_times is None:
            frame_times = timestep
        elif chunks is not None:
            frame_times = frame_times[:, chunks]
        return self.to_target(out, pixels[:, chunks] if chunks is not None else pixels, frame_times)

    def _chunk_times(
        self, timestep: torch.Tensor, chunks: int, chunk_frames: int, context_frames: int, shared: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """With a timestep per chunk (B, N): (each chunk's time (B, N), every window frame's time (B, N, K+F),
        the context frames' offsets from their window's time (B, N, (K+F)/pt) or None); (None, None, None) else."""
        if timestep.ndim != 2:
            return None, None, None
        times = chunk_times(timestep, chunks)  # (B, N)
        frame_times = window_times(times, chunk_frames, context_frames)  # every frame of a window at its owner's time
        offsets = None
        if context_frames > 0 and not shared:  # shared: borrowed context is computed at its owner's time
            offsets = (frame_times - times[:, :, None])[:, :, :: self.config.patch_t]
        return times, frame_times, offsets

    def to_target(self, out: torch.Tensor, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """The network's output -> the objective's target. With `x0` parameterisation the network predicts
        the clean video (easy at high noise: no noise has to be copied through the network, as JiT shows
        for pixel-space models) and the velocity is (x_t - x0) / sigma. out, x: (B, N, C, T, H, W);
        timestep: (B,), or (B, N, T) the time of every frame of every window."""
        if self.config.parameterization == "direct":
            return out
        sigma = (timestep.float() / 1000).clamp(min=MIN_SIGMA)
        sigma = sigma.view(-1, 1, 1, 1, 1, 1) if sigma.ndim == 1 else sigma[:, :, None, :, None, None]
        return (x.float() - out.float()) / sigma

    def forward(
        self, x: torch.Tensor, timestep: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One denoising evaluation with the model's own geometry (training): VIN read, then all chunks in
        parallel -> windows (B, N, C, K+F, H, W). A full-attention model (`full_frames > 0`) denoises the whole
        video as one window: (B, 1, C, T, H, W)."""
        cfg = self.config
        chunk, context = (x.shape[2], 0) if cfg.full_frames > 0 else (cfg.chunk_frames, cfg.context_frames)
        z = self.read_interface(x, timestep, labels, cfg.keyframe_stride)
        return self.denoise_chunks(x, timestep, labels, z, chunk, context)


@dataclass(frozen=True)
class WindowLayout:
    """How a batch of windows (B*N, L [+ M], D) falls into frames: B videos of N chunks in order, each
    window `frames` frames of `frame_tokens` tokens (frame-major), borrowing `borrow_frames` frames of
    its predecessor in shared-context mode. Tokens past frames * frame_tokens are VIN tokens (concat)."""

    batch: int
    chunks: int
    frames: int
    frame_tokens: int
    borrow_frames: int = 0

    def banded(self, attn: Attention, h: torch.Tensor, length: int, lent: torch.Tensor) -> torch.Tensor:
        """3D attention banded by chunk: (B*N, L, D) -> (B*N, L, D); `length` window tokens, then VIN tokens."""
        x = h.unflatten(0, (self.batch, self.chunks)).unsqueeze(2)  # (B, N, 1, L, D)
        return attn.banded(x, length, self.borrow_frames * self.frame_tokens, lent).squeeze(2).flatten(0, 1)

    def spatial(self, attn: Attention, h: torch.Tensor) -> torch.Tensor:
        """Attention within each frame: (W, T*S, D) -> (W, T*S, D)."""
        x = rearrange(h, "w (t s) d -> (w t) s d", s=self.frame_tokens)
        return rearrange(attn(x), "(w t) s d -> w (t s) d", t=self.frames)

    def temporal(self, attn: Attention, h: torch.Tensor, lent: torch.Tensor | None) -> torch.Tensor:
        """Attention across frames at each spatial position, banded by chunk when `lent`: (W, T*S, D) -> same."""
        if lent is None:
            x = rearrange(h, "w (t s) d -> (w s) t d", s=self.frame_tokens)
            return rearrange(attn(x), "(w s) t d -> w (t s) d", s=self.frame_tokens)
        x = rearrange(h, "(b n) (t s) d -> b n s t d", b=self.batch, s=self.frame_tokens)
        out = attn.banded(x, self.frames, self.borrow_frames, lent)  # (B, N, S, T, D)
        return rearrange(out, "b n s t d -> (b n) (t s) d")
