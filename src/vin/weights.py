"""Weights files: the one safetensors reader, and the check that a file fits a model.

Nothing is ever unpickled. A file that cannot be read, or does not fit, is one VinError line that names it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import VinError

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"  # a model folder's weights, as diffusers names them


def read_safetensors(path: str | Path, what: str, advice: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file; an unreadable one raises "`what` could not be loaded (reason)`advice`".

    `what` names the file as the user knows it ("checkpoint runs/x", "--prompt-embeds 'p.safetensors'");
    `advice` (e.g. "; resume from an older checkpoint") says what to do about it.
    """
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VinError(f"{what} could not be loaded ({reason}){advice}") from None


def first_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str | None:
    """The first tensor that a model's state dict and a weights file disagree on (missing, unexpected, shape), or None."""
    for name in expected:
        if name not in found:
            return f"no tensor {name!r}"
        if tuple(found[name].shape) != tuple(expected[name].shape):
            return f"{name!r} is {tuple(found[name].shape)}, the config makes {tuple(expected[name].shape)}"
    extra = sorted(set(found) - set(expected))
    return f"an unexpected tensor {extra[0]!r}" if extra else None
