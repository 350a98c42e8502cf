"""Configs: dataclasses, loaded from YAML with OmegaConf, overridable by `key=value` arguments.

A YAML file only needs the keys it changes; an unknown key is an error that names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .data.synthetic import SyntheticConfig
from .errors import VinError


@dataclass
class ModelConfig:
    """Arguments of `VINModel` (stored in the checkpoint's config.json)."""

    in_channels: int = 3
    sample_size: int = 32  # frame height and width the model is trained on
    patch_t: int = 2  # temporal patch size, in (latent) frames
    patch_hw: int = 4  # spatial patch size
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    num_classes: int = 0  # > 0: class-conditional, with a null label for classifier-free guidance
    vin_tokens: int = 32  # M; 0 disables the VIN (no global tokens)
    vin_process_blocks: int = 2
    coupling: str = "concat"  # concat | cross
    keyframe_positions: str = "none"  # none | relative
    chunk_frames: int = 16  # F
    context_frames: int = 4  # K
    keyframe_stride: int = 4  # s
    objective: str = "flow"  # flow (rectified flow, velocity) | epsilon | v (DDPM schedule)
    parameterization: str = "x0"  # x0: the network predicts the clean video (flow only) | direct: the target
    context_mode: str = "recompute"  # recompute (paper: context frames run through the DiT again) | shared (borrowed keys/values)
    attention: str = "3d"  # 3d (all tokens of a window) | factorised (spatial then temporal, as STDiT; needs coupling=cross)
    text_dim: int = 0  # > 0: conditioned on a text embedding of this size (precomputed offline; data.captions)
    full_frames: int = 0  # > 0: the full-attention baseline, trained on whole clips of up to this many frames


# Options that measured no better and left the model (figures: benchmarks/results.md). An old config or
# checkpoint that names one at the value it always had loads as before; any other value is an error.
RETIRED = {
    "model": {"registers": 0, "read_locality": "none", "vin_token_positions": "none", "vin_latent_std": 0.02},
    "train": {"chunk_noise": 0.0},
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
    ema_decay: float = 0.999
    context_dropout: float = 0.0  # fraction of windows whose context frames are blanked: only the VIN links them to the rest
    label_dropout: float = 0.1  # for classifier-free guidance, class-conditional models only
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
    return OmegaConf.to_object(base)


def config_to_dict(config: Config) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(config))


def save_config(config: Config, path: str | Path) -> None:
    with open(path, "w") as fh:
        yaml.safe_dump(config_to_dict(config), fh, sort_keys=False)
