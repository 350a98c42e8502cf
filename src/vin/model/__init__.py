"""The model: the protocol every model kind implements (`protocol`), the registry of kinds (`registry`),
chunks and windows (`windows`), the VIN read (`interface`) and the project's own video DiT (`vin`).

Names are imported on first use: importing `vin.model.registry` loads no model kind.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"VINModel": "vin.model.vin", "VideoModel": "vin.model.protocol", "assemble": "vin.model.windows"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vin.model' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
