"""Generation strategies over a trained model: `vin` and the baselines it is measured against.

Names are imported on first use: `vin.generation.options` (what a request may ask for) loads no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "STRATEGIES": "vin.generation.options",
    "GenerationOptions": "vin.generation.options",
    "Generation": "vin.generation.api",
    "check_request": "vin.generation.api",
    "generate": "vin.generation.api",
    "generate_from": "vin.generation.api",
    "make_options": "vin.generation.options",
    "StrategyOutput": "vin.generation.strategies",
    "run_strategy": "vin.generation.strategies",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vin.generation' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
