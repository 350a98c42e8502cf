"""Configs: dataclasses, loaded from YAML with OmegaConf, overridable by `key=value` arguments.

A YAML file only needs the keys it changes; an unknown key is an error that names it. Each section is
checked where it enters (`load_config`); how the sections fit together, and what a pretrained backbone
decides, is checked where a run starts (`vin.train.check_config`). This module is a leaf: it imports no
other part of vin (but its one error type), so every layer can read configs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import VinError


COUPLINGS = ("concat", "cross")
CONTEXT_MODES = ("recompute", "shared")
ATTENTIONS = ("3d", "factorised")
OBJECTIVES = ("flow", "epsilon", "v")
PARAMETERIZATIONS = ("x0", "direct")
LR_SCHEDULES = ("constant", "cosine")
BACKBONE_DTYPES = ("auto", "bf16", "fp16", "fp32")  # train.backbone_dtype (vin.devices.DTYPES names, and auto)
TIMESTEP_SAMPLINGS = ("logit_normal", "uniform")


@dataclass
class ModelConfig:
    """The model's settings: a model kind is built from these (`vin.model.registry`), and its config.json holds
    every one. The defaults are the measured recipe of the shipped model (configs/small.yaml: a VIN read by
    cross-attention from every frame; `concat` and sparse keyframes left the VIN unread, benchmarks/results.md).

    Declared here only; `check()` is the one place they are validated (load_config, the model kinds and
    checkpoint loading all call it).
    """

    in_channels: int = 3
    # the frame size the model is trained on and samples by default: an int (square) or [height, width], as in
    # diffusers; latent positions for a latent model (Wan at 832x480: [60, 104]). Resolved by `frame_size`.
    sample_size: Any = 32
    patch_t: int = 2  # temporal patch size, in (latent) frames
    patch_hw: int = 4  # spatial patch size
    width: int = 128
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    num_classes: int = 0  # > 0: class-conditional, with a null label for classifier-free guidance
    vin_tokens: int = 32  # M; 0 disables the VIN (no global tokens)
    vin_process_blocks: int = 2
    coupling: str = "cross"  # cross (a cross-attention to Z_t per block: the measured recipe) | concat (the paper: Z_t joins each window's self-attention)
    chunk_frames: int = 16  # F
    context_frames: int = 4  # K
    keyframe_stride: int = 1  # s (every frame: the measured recipe; the paper reads ~1 per second)
    objective: str = "flow"  # flow (rectified flow, velocity) | epsilon | v (DDPM schedule)
    parameterization: str = "x0"  # x0: the network predicts the clean video (flow only) | direct: the target
    context_mode: str = "recompute"  # recompute (paper: context frames run through the DiT again) | shared (borrowed keys/values)
    attention: str = "3d"  # 3d (all tokens of a window) | factorised (spatial then temporal, as STDiT; needs coupling=cross)
    text_dim: int = 0  # > 0: conditioned on a text embedding of this size (precomputed offline; data.captions)
    full_frames: int = 0  # > 0: the full-attention baseline, trained on whole clips of up to this many frames
    flow_shift: float = 1.0  # flow times shifted, in training and sampling: sigma -> s*sigma / (1 + (s-1)*sigma) (Wan2.1: 3 at 480p)
    # "": the project's own DiT. A folder: a pretrained diffusers WanTransformer3DModel (Wan2.1), frozen, that
    # denoises the chunks; its config decides in_channels, patch_hw, text_dim and depth (vin.backbones), and
    # width, heads, vin_process_blocks and mlp_ratio are then the VIN's own.
    backbone: str = ""

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of `sample_size` (see `frame_size`)."""
        return frame_size(self.sample_size)

    def check(self) -> "ModelConfig":
        """Raises a VinError naming the first bad setting; returns self."""
        for name in ("in_channels", "patch_t", "patch_hw", "width", "depth", "heads"):
            _at_least(f"model.{name}", getattr(self, name), 1)
        size = self.sample_size
        if isinstance(size, (list, tuple)) and len(size) == 2:
            for axis, value in zip(("height", "width"), size):
                _at_least(f"model.sample_size's {axis}", value, 1)
        else:
            _at_least("model.sample_size (an int, or [height, width])", size, 1)
        for name in ("num_classes", "vin_tokens", "vin_process_blocks", "text_dim", "full_frames"):
            _at_least(f"model.{name}", getattr(self, name), 0)
        if not isinstance(self.mlp_ratio, (int, float)) or self.mlp_ratio <= 0:
            raise VinError(f"model.mlp_ratio must be positive, got {self.mlp_ratio!r}")
        _in_span("model.flow_shift", self.flow_shift, "(0, inf)")
        if self.flow_shift != 1.0 and self.objective != "flow":
            raise VinError("model.flow_shift shifts flow times: it needs model.objective=flow")
        for name, choices in (("coupling", COUPLINGS), ("context_mode", CONTEXT_MODES),
                              ("attention", ATTENTIONS), ("objective", OBJECTIVES), ("parameterization", PARAMETERIZATIONS)):  # fmt: skip
            one_of(f"model.{name}", getattr(self, name), choices)
        if self.width % self.heads:
            near = min((h for h in range(1, self.width + 1) if self.width % h == 0), key=lambda h: (abs(h - self.heads), -h))
            raise VinError(f"model.heads={self.heads} must divide model.width={self.width} (e.g. heads={near})")
        if self.attention == "factorised" and self.coupling == "concat" and self.vin_tokens > 0:
            raise VinError("model.attention=factorised couples the VIN tokens by cross-attention (as STDiT does text): "
                           "set model.coupling=cross")  # fmt: skip
        if self.full_frames % self.patch_t:
            raise VinError(f"model.full_frames={self.full_frames} must be 0 or a multiple of model.patch_t={self.patch_t}")
        if self.parameterization == "x0" and self.objective != "flow":
            raise VinError("model.parameterization=x0 needs model.objective=flow; use parameterization=direct")
        if self.num_classes > 0 and self.text_dim > 0:
            raise VinError("a model is conditioned on class labels (model.num_classes) or text (model.text_dim), not both")
        if self.backbone:  # the backbone decides the patch sizes: the geometry is checked once resolved (registry.resolve)
            return self
        if any(side % self.patch_hw for side in self.frame_size):
            raise VinError(f"model.sample_size={self.sample_size} must be a multiple of model.patch_hw={self.patch_hw}")
        check_geometry(self.chunk_frames, self.chunk_frames, self.context_frames, self.patch_t, self.keyframe_stride)
        return self


def frame_size(sample_size: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a model's `sample_size`: the one place an int means a square frame. Takes the value
    from a `ModelConfig` or from a model's config (the protocol's `config.sample_size`)."""
    if isinstance(sample_size, int):
        return sample_size, sample_size
    return int(sample_size[0]), int(sample_size[1])


def _in_span(name: str, value: Any, span: str) -> None:
    """Raises unless `value` is a finite number in `span`, written as an interval: "[0, 1)", "(0, inf)"."""
    low, high = (float(v) for v in span[1:-1].split(","))
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if span[0] == "(" else value >= low) and (value < high if span[-1] == ")" else value <= high)
    if not ok:
        raise VinError(f"{name} must be a number in {span}, got {value!r}")


def _at_least(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise VinError(f"{name} must be a whole number of at least {low}, got {value!r}")


def one_of(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raises a VinError naming the setting unless `value` is one of `choices`."""
    if value not in choices:
        raise VinError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def check_geometry(frames: int, chunk_frames: int, context_frames: int, patch_t: int, keyframe_stride: int) -> int:
    """Validates a chunking request and returns the number of chunks, or raises a VinError that says how to fix it."""
    if frames <= 0:
        raise VinError(f"frames must be positive, got {frames}")
    if chunk_frames <= 0 or chunk_frames % patch_t:
        raise VinError(f"chunk_frames={chunk_frames} must be a positive multiple of the temporal patch size {patch_t}")
    if frames % chunk_frames:
        lo, hi = (frames // chunk_frames) * chunk_frames, (frames // chunk_frames + 1) * chunk_frames
        near = f"{lo} or {hi}" if lo else f"{hi}"
        raise VinError(f"{frames} frames cannot be cut into chunks of {chunk_frames} frames; "
                       f"use a multiple of {chunk_frames} (e.g. {near})")  # fmt: skip
    if context_frames < 0 or context_frames % patch_t or context_frames > chunk_frames:
        raise VinError(f"context_frames={context_frames} must be a multiple of {patch_t} between 0 and chunk_frames={chunk_frames}")
    if keyframe_stride <= 0:
        raise VinError(f"keyframe_stride must be positive, got {keyframe_stride}")
    return frames // chunk_frames


# Options that measured no better and left the model (figures: benchmarks/results.md). An old config or
# checkpoint that names one at the value it always had loads as before; any other value is an error.
RETIRED = {
    "model": {"registers": 0, "read_locality": "none", "vin_token_positions": "none", "vin_latent_std": 0.02,
              "keyframe_positions": "none"},
    "train": {"chunk_noise": 0.0, "context_dropout": 0.0, "context_loss": 0.0},
}


def drop_retired(section: str, values: dict[str, Any], where: str) -> dict[str, Any]:
    """`values` without the retired options of `section` that sit at their old defaults; raises on any other value."""
    retired = RETIRED.get(section, {})
    for key in set(values) & set(retired):
        if values[key] != retired[key]:
            raise VinError(f"{where}: {section}.{key}={values[key]!r} is an option that was retired (it measured no "
                           f"better; see benchmarks/results.md); remove it, or use a vin release that has it")  # fmt: skip
    return {k: v for k, v in values.items() if k not in retired}


@dataclass
class SyntheticConfig:
    """The procedural videos (`vin.data.synthetic`): frame size, sprites, background."""

    height: int = 32
    width: int = 32
    num_sprites: int = 2  # the first is always a digit
    sprite_size: int = 10
    min_speed: float = 0.3  # pixels per frame
    max_speed: float = 1.0
    texture_cells: int = 4  # the background is a smooth field of this many cells per side ...
    stripe_amplitude: float = 25.0  # ... plus stripes of this amplitude (in 0..255 units)


@dataclass
class DataConfig(SyntheticConfig):
    """Where clips come from. `synthetic` (procedural, the fields above) or a `folder` of video files."""

    source: str = "synthetic"  # synthetic | folder
    root: str = ""  # folder: a folder tree of .mp4 / .webm / .avi / .mov / .mkv files
    frame_stride: int = 1  # folder: take every n-th source frame ...
    fps: float = 0.0  # ... or, when > 0, resample every video to this frame rate
    crop: str = "center"  # folder: center | random (after resizing the short side to height/width)
    labels: str = "none"  # folder: none | folders (class id = sorted index of the top-level sub-folder)
    captions: str = ""  # folder: a .safetensors of precomputed text embeddings, keyed by path relative to root
    cache_dir: str = ""  # folder: keep decoded (and encoded) videos here, so later epochs do not decode again
    workers: int = 0  # folder: threads that decode a batch's clips in parallel (0: in the training thread)
    autoencoder: str = ""  # a local diffusers autoencoder folder: train in its latent space (default: pixels)


@dataclass
class TrainConfig:
    steps: int = 1000
    windows_per_step: int = 8  # chunks per batch; a clip of N chunks gives batch = windows_per_step / N clips
    chunk_counts: list[int] = field(default_factory=lambda: [1, 2, 4])  # clips of 1, 2 or 4 chunks, mixed
    grad_accum: int = 1  # batches of windows_per_step windows accumulated per optimizer step
    lr: float = 3e-4
    lr_schedule: str = "constant"  # constant | cosine (after the linear warm-up)
    min_lr_ratio: float = 0.1  # cosine: the last step's lr, as a fraction of lr
    weight_decay: float = 0.0
    warmup_steps: int = 200
    grad_clip: float = 1.0
    lora_rank: int = 0  # > 0 (a wan backbone only): LoRA adapters of this rank on the DiT's attention train too (peft)
    backbone_dtype: str = "auto"  # a pretrained backbone's frozen weights: auto (bf16 on CUDA, fp32 on the CPU) | bf16 | fp16 | fp32; what trains stays fp32
    ema_decay: float = 0.999
    label_dropout: float = 0.1  # for classifier-free guidance, class-conditional models only
    init_prob: float = 0.0  # clips of 2+ chunks trained as continuations: their first 1..N-1 chunks given clean (time 0, no loss)
    timestep_sampling: str = "logit_normal"  # logit_normal | uniform (flow); DDPM objectives use uniform
    logit_mean: float = 0.0  # logit_normal: sigma = sigmoid(N(mean, std)); > 0 favours high noise (JiT: 0.8)
    logit_std: float = 1.0
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    device: str = "auto"  # auto | cpu | cuda
    activation_checkpointing: bool = False  # recompute the DiT blocks' activations in backward: less memory, ~30% slower
    out_dir: str = "runs/vin"
    save_every: int = 500  # also a resumable checkpoint in out_dir/checkpoints/step_NNNNNNN
    keep_checkpoints: int = 3  # resumable checkpoints kept (the newest)
    resume: str = ""  # "": start fresh | auto: the newest checkpoint in out_dir, if any | a checkpoint folder
    init_from: str = ""  # a fresh run starts from this exported model's weights (a folder, or "default" / "full": the shipped ones)
    stop_at: int = 0  # > 0: save and stop after this step (a time-limited job); resume later with resume=auto
    log_every: int = 10
    sample_every: int = 0  # > 0: write out_dir/samples/step_NNNNNNN.mp4 from the EMA model every this many steps
    sample_frames: int = 0  # frames per sample video (0: twice the longest training clip)
    sample_steps: int = 10  # denoising steps per sample

    def check(self) -> "TrainConfig":
        """Raises a VinError naming the first bad setting; returns self."""
        for name, low in (("steps", 1), ("windows_per_step", 1), ("grad_accum", 1), ("warmup_steps", 0), ("seed", 0),
                          ("threads", 0), ("lora_rank", 0), ("save_every", 1), ("keep_checkpoints", 1), ("stop_at", 0), ("log_every", 1),
                          ("sample_every", 0), ("sample_frames", 0), ("sample_steps", 1)):  # fmt: skip
            _at_least(f"train.{name}", getattr(self, name), low)
        if not self.chunk_counts or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.chunk_counts):
            raise VinError(f"train.chunk_counts must be a non-empty list of positive integers, got {self.chunk_counts}")
        for name, span in (("lr", "[0, inf)"), ("min_lr_ratio", "[0, 1]"), ("weight_decay", "[0, inf)"), ("grad_clip", "[0, inf)"),
                           ("ema_decay", "[0, 1]"), ("label_dropout", "[0, 1]"), ("init_prob", "[0, 1]"),
                           ("logit_mean", "(-inf, inf)"), ("logit_std", "(0, inf)")):  # fmt: skip
            _in_span(f"train.{name}", getattr(self, name), span)
        one_of("train.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        one_of("train.backbone_dtype", self.backbone_dtype, BACKBONE_DTYPES)
        one_of("train.timestep_sampling", self.timestep_sampling, TIMESTEP_SAMPLINGS)
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise VinError(f"train.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        return self


@dataclass
class LatentConfig:
    """How the model's frames relate to video frames, for cost accounting (`vin bench`).

    A latent video model sees frames compressed by an autoencoder: `video_frames` video frames become
    `latent_frames` latent frames, and each latent frame is `height` x `width`. The defaults describe a
    pixel-space model: one frame per frame, `model.sample_size` square (height/width 0).
    """

    height: int = 0  # latent frame height; 0: model.sample_size
    width: int = 0  # latent frame width; 0: model.sample_size
    video_frames: int = 1  # this many video frames ...
    latent_frames: int = 1  # ... make this many latent frames (paper: 16 -> 5)
    fps: int = 16  # video frames per second


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults <- YAML file <- `key=value` overrides. Raises VinError on a missing file or unknown key."""
    base = OmegaConf.structured(Config)
    try:
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise VinError(f"config file {path} does not exist")
            with open(path) as fh:
                data = yaml.safe_load(fh) or {}
            if not isinstance(data, dict):
                raise VinError(f"config file {path} must hold a mapping of sections (model, data, train, latent)")
            data = {k: drop_retired(k, v, f"config file {path}") if isinstance(v, dict) else v for k, v in data.items()}
            base = OmegaConf.merge(base, OmegaConf.create(data))
        for item in overrides:
            if "=" not in item:
                raise VinError(f"override {item!r} must look like section.key=value, e.g. train.steps=100")
        dotted = OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)))
        dotted = {k: drop_retired(k, v, "override") if isinstance(v, dict) else v for k, v in dotted.items()}
        base = OmegaConf.merge(base, OmegaConf.create(dotted))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        detail = str(err).splitlines()[0]
        where = f" ({key})" if key else ""
        raise VinError(f"bad config{where}: {detail} (sections: model, data, train, latent; see configs/tiny.yaml)") from None
    except yaml.YAMLError as err:
        raise VinError(f"config file {path} is not valid YAML: {err}") from None
    config = OmegaConf.to_object(base)
    config.model.check()  # each section where it enters; a backbone and how sections fit: vin.train.check_config
    config.train.check()
    return config


def config_to_dict(config: Config) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(config))


def save_config(config: Config, path: str | Path) -> None:
    with open(path, "w") as fh:
        yaml.safe_dump(config_to_dict(config), fh, sort_keys=False)
