"""Checkpoints: a folder with config.json (every `ModelConfig` setting) and safetensors weights.

Loading never unpickles, and refuses weights that do not match their config exactly: a missing,
unexpected or misshapen tensor is one error line naming it. The shipped models live in `checkpoints/`.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .config import ModelConfig, drop_retired
from .errors import VinError
from .model.vin import VINModel

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
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
    dropped): a VINModel's, or a WanVIN's (whose `backbone` is its backbone's folder)."""
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
    if name == "WanVIN":  # a VIN on a Wan backbone: its ModelConfig, and the LoRA rank it was trained with
        meta = {k: v for k, v in meta.items() if k != "lora_rank"}
    elif name != VINModel.__name__:
        what = f"a {name!r}" if name else "no model class (_class_name)"
        raise VinError(f"checkpoint {path}: its {CONFIG_NAME} names {what}, not VINModel; is it a vin checkpoint? ({HINT})")
    settings = drop_retired("model", {k: v for k, v in meta.items() if not k.startswith("_")}, f"checkpoint {path}")
    unknown = sorted(set(settings) - {f.name for f in fields(ModelConfig)})
    if unknown:
        raise VinError(f"checkpoint {path}: its {CONFIG_NAME} has settings this version of vin does not know "
                       f"({', '.join(unknown)}); it was written by another version")  # fmt: skip
    config = ModelConfig(**settings)
    try:
        return config.check()
    except VinError as err:
        raise VinError(f"checkpoint {path} has a bad config: {err}") from None


def load_model(
    path: str | Path | None = None, device: str | torch.device = "cpu", autoencoder: str | Path | None = None
) -> VINModel:
    """Loads a checkpoint directory (config.json + diffusion_pytorch_model.safetensors) in eval mode.

    Never unpickles: weights are read with safetensors. Any problem is a VinError naming the file.
    A model trained in latent space (its folder holds autoencoder.json, or its train.yaml names
    data.autoencoder) gets `model.latent_decoder`, which decodes its samples with that autoencoder
    (loaded on first use); `autoencoder` points to another copy of it (a folder, as save_pretrained writes).
    """
    path = Path(path) if path is not None else default_checkpoint()
    wan = _wan_meta(path)
    if wan is not None:  # a VIN on a pretrained Wan: the adapter here, the backbone in its own folder
        from .backbones.wan import load_wan_vin

        model = load_wan_vin(path, wan, device)
        model.latent_decoder = _latent_decoder(path, model, autoencoder)
        return model
    model = VINModel(read_model_config(path))
    try:
        weights = load_file(str(path / WEIGHTS_NAME))
    except (SafetensorError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VinError(f"checkpoint {path} could not be loaded: {reason} (is {WEIGHTS_NAME} complete?)") from None
    mismatch = first_mismatch(model.state_dict(), weights)
    if mismatch:
        raise VinError(f"checkpoint {path} could not be loaded: its {WEIGHTS_NAME} does not match its {CONFIG_NAME} "
                       f"({mismatch}); the two files come from different models")  # fmt: skip
    model.load_state_dict(weights)
    model = model.to(device).eval()
    model.latent_decoder = _latent_decoder(path, model, autoencoder)
    return model


def _wan_meta(path: Path) -> dict | None:
    """The config.json of a Wan-backbone checkpoint (a WanVIN adapter), or None for anything else."""
    try:
        meta = json.loads((path / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None  # read_model_config says what is wrong
    return meta if isinstance(meta, dict) and meta.get("_class_name") == "WanVIN" else None


def first_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str | None:
    """The first tensor that a model's state dict and a weights file disagree on (missing, unexpected, shape), or None."""
    for name in expected:
        if name not in found:
            return f"no tensor {name!r}"
        if tuple(found[name].shape) != tuple(expected[name].shape):
            return f"{name!r} is {tuple(found[name].shape)}, the config makes {tuple(expected[name].shape)}"
    extra = sorted(set(found) - set(expected))
    return f"an unexpected tensor {extra[0]!r}" if extra else None


def _latent_decoder(path: Path, model: VINModel, autoencoder: str | Path | None):
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
