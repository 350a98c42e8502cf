"""What every model kind offers: the one interface that strategies, training, checkpoints and the API use.

A model kind (the project's own DiT, `VINModel`; a VIN on a pretrained Wan2.1, `WanVIN`) is an
`nn.Module` that subclasses `VideoModel` and registers its class name in `vin.model.registry`. Code that
needs a model asks this interface, never the class: no `isinstance`, no `hasattr`.

Geometry. `config` is the model's resolved `ModelConfig` (for a backbone, with what the backbone decides
filled in), read by attribute: chunk_frames F, context_frames K, keyframe_stride s, patch_t, sample_size,
in_channels, objective, flow_shift, full_frames, num_classes, text_dim, ... Sampling settings are
resolved against it once (`vin.generation.strategies.plan`) and passed to the methods below as values.

Shapes: a video x is (B, C, T, H, W); a timestep is (B,) one per video or (B, N) one per chunk, in
[0, 1000]; Z_t is (B, M, D) shared by every chunk or (B, N, M, D) one per chunk; windows are
(B, N, C, K+F, H, W).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import ModelConfig


@dataclass(frozen=True)
class TextEncoder:
    """A backbone's text encoder: `encode(texts) -> (B, length, text_dim)` (the prompt's tokens, then zeros);
    `encoder_id` names it (captions encoded by another encoder are not reused)."""

    encoder_id: str
    length: int
    encode: Callable[[list[str]], torch.Tensor]


class VideoModel(ABC):
    """A chunk-parallel video denoiser coupled to a VIN (see the module docstring)."""

    config: Any  # the resolved ModelConfig, read by attribute
    latent_decoder: Any  # latents -> pixels (vin.data.latent.LatentDecoder), set where the model is loaded; None: pixels
    # The project's own DiT exposes its blocks (condition, embed_windows, run_blocks, decode_windows, to_target), which
    # strategies that change attention inside every block (spectral) need; a pretrained backbone runs as one forward.
    exposes_blocks: bool = False
    # True: sampling needs a condition (a prompt's embeddings); there is no unconditional null to fall back on.
    needs_condition: bool = False
    extra_settings: tuple[str, ...] = ()  # config.json keys beside the ModelConfig's (e.g. a LoRA rank)

    # ---- building, resolving, saving and loading (a kind's class methods; `vin.model.registry` dispatches)
    @classmethod
    @abstractmethod
    def resolve_config(cls, config: ModelConfig) -> ModelConfig:
        """`config` with what this kind decides filled in (a backbone's geometry), checked; the one resolution."""

    @classmethod
    @abstractmethod
    def build(cls, config: ModelConfig, lora_rank: int = 0, dtype: torch.dtype | None = None) -> "VideoModel":
        """A freshly initialised model of this kind (a backbone loaded from its folder, the rest new); `dtype`: what
        a pretrained backbone's frozen weights are held in (None: float32; what diffusers keeps in float32 stays
        so); what trains is float32 whatever it is."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path, config: ModelConfig, meta: dict[str, Any], device: str | torch.device,
             backbone: str | Path | None = None, dtype: torch.dtype | None = None) -> "VideoModel":  # fmt: skip
        """The model a `save` wrote to `folder` (its config.json read into `config` and `meta`), in eval mode;
        `backbone`: another copy of the pretrained backbone the run recorded; `dtype`: what a pretrained backbone
        computes in (None: the kind's default for `device`; what diffusers keeps in float32 stays so), whatever
        dtype it was saved in."""

    @classmethod
    @abstractmethod
    def text_encoder(cls, config: ModelConfig, device: str | torch.device) -> "TextEncoder":
        """The text encoder that comes with this kind's backbone, to encode training captions given as text (loaded
        on its first call); a VinError for a kind without one."""

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Writes config.json (class name and every setting) and the trained weights, atomically."""

    @abstractmethod
    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """What training changes and a checkpoint must keep (all of the own DiT; a backbone's adapter, not the backbone)."""

    @abstractmethod
    def load_trained_state_dict(self, weights: dict[str, torch.Tensor]) -> None:
        """Loads what `trained_state_dict` gave, strictly: a missing, unexpected or misshapen tensor is a VinError."""

    @abstractmethod
    def checkpoint_activations(self) -> None:
        """The DiT blocks recompute their activations in the backward pass (less memory, ~30% more compute)."""

    @abstractmethod
    def compile_blocks(self) -> None:
        """`torch.compile` each DiT block, the sampling's hot path (compiled on the first call of each shape; the
        output agrees with eager within float rounding)."""

    # ---- sampling and training
    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where the model's trained tensors live."""

    @property
    @abstractmethod
    def dtype(self) -> torch.dtype:
        """The dtype the model computes in (inputs are cast to it)."""

    @property
    @abstractmethod
    def token_width(self) -> int:
        """The width of the DiT's tokens (memory estimates)."""

    @property
    @abstractmethod
    def default_scheduler(self) -> str:
        """The scheduler this model samples with unless asked otherwise (one of `schedulers`)."""

    @property
    @abstractmethod
    def schedulers(self) -> tuple[str, ...]:
        """The schedulers it can sample with: `euler` (flow, Euler), `ddim` (DDPM objectives), `pipeline` (a
        pretrained pipeline folder's own scheduler, e.g. Wan2.1's UniPC with its flow shift)."""

    @abstractmethod
    def make_scheduler(self, name: str, clip: bool):
        """A fresh diffusers scheduler `name` (one of `schedulers`); `clip`: DDIM clamps to [-1, 1] (pixels)."""

    @abstractmethod
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """Text prompts -> their token embeddings (B, L, text_dim), as the backbone's own pipeline encodes them;
        a VinError for a model without a text encoder."""

    @abstractmethod
    def null_condition(self, labels: torch.Tensor) -> torch.Tensor:
        """The unconditional counterpart of `labels`, which classifier-free guidance contrasts with."""

    @abstractmethod
    def read_interface(self, x: torch.Tensor, timestep: torch.Tensor, labels: torch.Tensor | None, keyframe_stride: int,
                       frame_offset: int = 0, merge=None) -> torch.Tensor | None:  # fmt: skip
        """The slow path: Z_t, the VIN's read of the keyframes (every `keyframe_stride`-th frame) of the whole
        noisy video; None for a model without a VIN. `frame_offset`, `merge`: `x` is one rank's
        share of a video spread over processes (`vin.parallel.allreduce_merge` combines the partial reads)."""

    @abstractmethod
    def denoise_chunks(self, x: torch.Tensor, timestep: torch.Tensor, labels: torch.Tensor | None, z: torch.Tensor | None,
                       chunk_frames: int, context_frames: int, time_scale: float = 1.0, chunks: slice | None = None,
                       context: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """The fast path: every chunk's window (K context frames, then its F own) through the DiT as one batch ->
        windows. `chunks`: only those windows; `context` (B, C, K, H, W): chunk 0's context when `x` is part of
        a longer video; `time_scale` < 1 squeezes a long window's positions into the trained range."""

    @abstractmethod
    def forward(self, x: torch.Tensor, timestep: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """One denoising evaluation as training sees it, with the model's own geometry: the VIN read, then every
        chunk in parallel -> windows (a full-attention model: the whole video as one window, (B, 1, C, T, H, W))."""
