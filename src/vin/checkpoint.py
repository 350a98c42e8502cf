"""Checkpoints: a folder with config.json (the model kind's class name and every `ModelConfig` setting)
and safetensors weights.

Loading reads config.json, then the registered kind it names loads the weights (`vin.model.registry`):
this module imports no model kind. Loading never unpickles, and refuses weights that do not match their
config exactly: a missing, unexpected or misshapen tensor is one error line naming it. The shipped
models live in `checkpoints/`.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from typing import TYPE_CHECKING, Any

from .config import ModelConfig, drop_retired
from .errors import VinError
from .model.registry import KINDS, kind, load
from .weights import WEIGHTS_NAME

if TYPE_CHECKING:
    import torch

    from .model.protocol import VideoModel

CONFIG_NAME = "config.json"
SHIPPED = ("default", "full")  # the VIN model, and the full-attention baseline trained the same way
HINT = "a checkpoint directory holds config.json and diffusion_pytorch_model.safetensors, as written by `vin train`"


def default_checkpoint(name: str = "default") -> Path:
    """A small model that ships inside the package: `default` (the VIN model) or `full` (its full-attention
    baseline, trained on whole clips with the same data and budget)."""
    if name not in SHIPPED:
        raise VinError(f"no shipped checkpoint named {name!r}; shipped: {', '.join(SHIPPED)}")
    return Path(__file__).parent / "checkpoints" / name


def checkpoint_path(text: str | Path | None) -> Path:
    """A checkpoint argument: None or a shipped name ("default", "full") -> its folder, anything else a path."""
    if text is None:
        return default_checkpoint()
    return default_checkpoint(str(text)) if str(text) in SHIPPED else Path(text).expanduser()


def read_model_config(path: str | Path) -> ModelConfig:
    """The checked `ModelConfig` of a checkpoint folder's config.json (retired settings at their old values
    dropped): the own DiT's, or a backbone kind's (whose `backbone` is its backbone's folder)."""
    return read_config_json(path)[1]


def read_config_json(path: str | Path) -> tuple[str, ModelConfig, dict[str, Any]]:
    """A checkpoint folder's config.json: (the registered kind it names, its checked `ModelConfig`, the whole file)."""
    path = Path(path)
    if not path.is_dir():
        raise VinError(f"checkpoint {path} does not exist or is not a directory ({HINT})")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise VinError(f"checkpoint {path} has no {name} ({HINT})")
    try:
        meta = json.loads((path / CONFIG_NAME).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VinError(f"checkpoint {path}: {CONFIG_NAME} is not valid JSON ({err}); the folder is damaged or not a "
                       "vin checkpoint: point --checkpoint at a folder written by `vin train`") from None  # fmt: skip
    name = meta.get("_class_name") if isinstance(meta, dict) else None
    if name not in KINDS:
        what = f"a {name!r}" if name else "no model class (_class_name)"
        raise VinError(f"checkpoint {path}: its {CONFIG_NAME} names {what}, not {' or '.join(KINDS)}; is it a vin "
                       f"checkpoint? ({HINT})")  # fmt: skip
    extra = set(kind(name).extra_settings)
    settings = {k: v for k, v in meta.items() if not k.startswith("_") and k not in extra}
    settings = drop_retired("model", settings, f"checkpoint {path}")
    unknown = sorted(set(settings) - {f.name for f in fields(ModelConfig)})
    if unknown:
        raise VinError(f"checkpoint {path}: its {CONFIG_NAME} has settings this version of vin does not know "
                       f"({', '.join(unknown)}); it was written by another version")  # fmt: skip
    try:
        return name, ModelConfig(**settings).check(), meta
    except VinError as err:
        raise VinError(f"checkpoint {path} has a bad config: {err}") from None


def load_model(
    path: str | Path | None = None, device: "str | torch.device" = "cpu", autoencoder: str | Path | None = None,
    backbone: str | Path | None = None, dtype: "torch.dtype | None" = None,
) -> "VideoModel":  # fmt: skip
    """Loads a checkpoint directory (config.json + diffusion_pytorch_model.safetensors) in eval mode.

    Never unpickles: weights are read with safetensors. Any problem is a VinError naming the file.
    A model trained in latent space (its folder holds autoencoder.json, or its train.yaml names
    data.autoencoder) gets `model.latent_decoder`, which decodes its samples with that autoencoder
    (loaded on first use); `autoencoder` points to another copy of it (a folder, as save_pretrained writes).
    `backbone`: a run on a pretrained backbone, pointed at another copy of the backbone it recorded; `dtype`:
    what that backbone computes in (None: bfloat16 on CUDA, float32 on the CPU).
    """
    path = Path(path) if path is not None else default_checkpoint()
    name, config, meta = read_config_json(path)
    model = load(path, name, config, meta, device, backbone, dtype)
    if autoencoder is None and backbone is not None:  # a moved pipeline folder brings its VAE along
        from .backbones import pipeline_folder

        folder = pipeline_folder(backbone)
        autoencoder = folder / "vae" if folder is not None and (folder / "vae").is_dir() else None
    model.latent_decoder = _latent_decoder(path, model, autoencoder)
    return model


def _latent_decoder(path: Path, model: "VideoModel", autoencoder: str | Path | None):
    """The decoder of a latent-space model's samples (its recorded autoencoder, or `autoencoder`), or None for pixels."""
    from .data.latent import LatentDecoder, LatentSpace

    space = LatentSpace.read(path)
    if space is None and autoencoder is None:
        return None
    if space is None:  # no record, but an autoencoder given: scaled as its config.json says
        space = LatentSpace.of_folder(autoencoder)
    decoder = LatentDecoder(space, autoencoder)
    channels = decoder.space.latent_channels
    if channels and channels != model.config.in_channels:
        raise VinError(f"checkpoint {path} makes {model.config.in_channels}-channel frames, but the autoencoder "
                       f"{str(decoder.folder)!r} has {channels} latent channels; is it the one the model was trained with?")  # fmt: skip
    return decoder
