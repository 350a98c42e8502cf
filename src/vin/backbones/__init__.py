"""Pretrained video DiTs as the chunk-parallel backbone of a VIN (diffusers models, loaded from local folders).

`model.backbone` names a local folder: a whole diffusers pipeline as its users download it
(Wan2.1-T2V-1.3B-Diffusers: `model_index.json`, `transformer/`, `vae/`, `text_encoder/`, `tokenizer/`,
`scheduler/`), whose text encoder, tokenizer, scheduler and VAE are then used as its own pipeline uses them,
or the `transformer/` folder alone (`WanTransformer3DModel.save_pretrained`; prompts then come as
precomputed embeddings). The transformer's class names the model kind that wraps it
(`BACKBONES`, the backbones' registration; the kinds themselves are in `vin.model.registry`), and its
config.json decides the model's geometry: `resolve_backbone` copies it into the `ModelConfig` (the kind's
`resolve_config`), so every later reader sees one resolved config. This module is torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import VinError

WAN_TRANSFORMER = "WanTransformer3DModel"
BACKBONES = {WAN_TRANSFORMER: "WanVIN"}  # a backbone folder's class -> the registered model kind that wraps it
HINT = ("model.backbone must be a local diffusers Wan2.1 folder (e.g. Wan2.1-T2V-1.3B-Diffusers, with model_index.json "
        "and transformer/), or its transformer/ folder alone")  # fmt: skip
PIPELINE_FILE = "model_index.json"

# What the chunk-parallel machinery needs of a model on a Wan backbone, fixed by Wan itself.
WAN_FIXED = {"patch_t": 1, "objective": "flow", "parameterization": "direct", "coupling": "cross", "attention": "3d",
             "context_mode": "recompute", "num_classes": 0, "full_frames": 0}  # fmt: skip


def pipeline_folder(path: str | Path) -> Path | None:
    """The diffusers pipeline folder `path` is (it holds model_index.json), or None for a transformer folder alone."""
    folder = Path(path).expanduser()
    return folder if (folder / PIPELINE_FILE).is_file() else None


def transformer_folder(path: str | Path) -> Path:
    """The folder of the backbone's transformer: `path/transformer` for a pipeline folder, else `path` itself."""
    folder = Path(path).expanduser()
    return folder / "transformer" if pipeline_folder(folder) is not None else folder


def backbone_config(path: str | Path) -> dict[str, Any]:
    """The transformer's config.json of a backbone folder (a pipeline or its transformer/), or a VinError that
    says what is wrong with the folder."""
    folder = transformer_folder(path)
    if not (folder / "config.json").is_file():
        state = "has no config.json" if folder.is_dir() else "does not exist"
        raise VinError(f"wan backbone {str(folder)!r} {state} ({HINT})")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VinError(f"wan backbone {str(folder)!r}: config.json is not valid JSON ({err})") from None
    name = config.get("_class_name") if isinstance(config, dict) else None
    if name not in BACKBONES:
        raise VinError(f"wan backbone {str(folder)!r} holds a {name!r}, not a {' or '.join(BACKBONES)} ({HINT})")
    return config


def backbone_kind(path: str | Path) -> str:
    """The registered model kind that wraps the backbone in folder `path` (checked: a VinError says what is wrong)."""
    return BACKBONES[backbone_config(path)["_class_name"]]


def backbone_settings(bc) -> dict[str, Any]:
    """The `ModelConfig` settings a Wan backbone's config (config.json, or a loaded model's `.config`)
    decides: its geometry, and what Wan fixes (`WAN_FIXED`)."""
    patch = list(bc.get("patch_size", [1, 2, 2]))
    if patch[0] != 1:
        raise VinError(f"wan backbone: a temporal patch of {patch[0]} is not supported (Wan2.1 uses 1)")
    return {"in_channels": bc.get("in_channels", 16), "patch_hw": patch[1], "text_dim": bc.get("text_dim", 4096),
            "depth": bc.get("num_layers", 30), **WAN_FIXED}  # fmt: skip


def backbone_fingerprint(path: str | Path) -> str:
    """A short hash of a backbone: its transformer's config.json, and each weights file's size and first and last
    MiB (the header, the first and last tensors), so another backbone of the same shapes is told apart without
    reading gigabytes. A copy re-saved in another dtype has another fingerprint too."""
    import hashlib

    folder = transformer_folder(path)
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        size = weights.stat().st_size
        with open(weights, "rb") as fh:
            digest.update(f"{weights.name}:{size}".encode())
            digest.update(fh.read(2**20))
            fh.seek(max(0, size - 2**20))
            digest.update(fh.read(2**20))
    return digest.hexdigest()[:16]


def check_recorded_settings(recorded: dict[str, Any], path: str | Path, where: str) -> None:
    """The backbone-derived settings a run's config.json records agree with the backbone: an edited one is an error."""
    for name, value in backbone_settings(backbone_config(path)).items():
        if name in recorded and recorded[name] != value:
            raise VinError(f"{where}: its config.json says model.{name}={recorded[name]!r}, but the backbone {str(path)!r} "
                           f"makes it {value!r}; the file was edited or the backbone is another (a backbone decides it)")  # fmt: skip


def resolve_backbone(model):
    """`model` (a ModelConfig with `backbone` set) with what its backbone decides filled in, as a new config.

    A setting the user moved off its default that contradicts the backbone is an error naming both values,
    as silently overriding it would hide a mistake; a setting left at its default takes the backbone's value.
    """
    from dataclasses import replace

    defaults = type(model)()
    settings = backbone_settings(backbone_config(model.backbone))
    for name, value in settings.items():
        given = getattr(model, name)
        if given != value and given != getattr(defaults, name):
            raise VinError(f"model.{name}={given!r} contradicts the wan backbone {model.backbone!r}, which makes it "
                           f"{value!r}; remove model.{name} (a backbone's geometry is read from its config)")  # fmt: skip
    if model.vin_tokens == 0:
        raise VinError("model.vin_tokens=0: a wan backbone is here to read a VIN; set model.vin_tokens > 0")
    return replace(model, **settings).check()
