"""Model kinds, registered by the class name their config.json records.

Loading a checkpoint folder imports the kind its config.json names, and nothing imports every kind: a
new model kind is one file (a `vin.model.protocol.VideoModel`) and one line here. A pretrained backbone
folder (`model.backbone`) names its kind through `vin.backbones.BACKBONES`. Torch-free until a kind is used.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ModelConfig

if TYPE_CHECKING:
    import torch

    from .protocol import TextEncoder, VideoModel

# class name in config.json -> "module:class" of the model kind
KINDS = {
    "VINModel": "vin.model.vin:VINModel",  # the project's own video DiT (vin.model.vin)
    "WanVIN": "vin.backbones.wan:WanVIN",  # a VIN on a pretrained diffusers Wan2.1 (vin.backbones.wan)
}


def kind(name: str) -> type["VideoModel"]:
    """The class registered under `name` (a KeyError for an unknown name: callers say what is wrong)."""
    module, cls = KINDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def kind_name(config: ModelConfig) -> str:
    """The kind a model config builds: the own DiT, or the one its backbone folder's class is registered to."""
    if not config.backbone:
        return "VINModel"
    from ..backbones import backbone_kind

    return backbone_kind(config.backbone)


def resolve(config: ModelConfig) -> ModelConfig:
    """`config` with what its kind decides (a backbone's geometry) filled in and checked: the one resolution."""
    return kind(kind_name(config)).resolve_config(config)


def text_encoder(config: ModelConfig, device: "str | torch.device") -> "TextEncoder":
    """The text encoder that comes with the model `config` describes (loaded on its first call)."""
    return kind(kind_name(config)).text_encoder(resolve(config), device)


def build(config: ModelConfig, lora_rank: int = 0, dtype: "torch.dtype | None" = None) -> "VideoModel":
    """A fresh model of the kind `config` describes (resolved first); `dtype`: a pretrained backbone's."""
    return kind(kind_name(config)).build(resolve(config), lora_rank, dtype)


def load(folder: Path, name: str, config: ModelConfig, meta: dict[str, Any], device: "str | torch.device",
         backbone: str | Path | None = None, dtype: "torch.dtype | None" = None) -> "VideoModel":  # fmt: skip
    """The model saved in `folder`, whose config.json names the registered kind `name`."""
    return kind(name).load(folder, config, meta, device, backbone, dtype)
