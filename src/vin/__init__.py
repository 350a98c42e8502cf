"""vin: scalable parallel long-video generation with Video Interface Networks.

The names below are imported on first use, so `import vin` (and `vin --help`) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Config": "vin.config",
    "load_config": "vin.config",
    "VinError": "vin.errors",
    "generate": "vin.generation.api",
    "default_checkpoint": "vin.checkpoint",
    "load_model": "vin.checkpoint",
    "read_video": "vin.videos",
    "write_video": "vin.videos",
    "VINModel": "vin.model.vin",
    "VideoModel": "vin.model.protocol",
    "WanVINPipeline": "vin.generation.pipeline",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vin' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
