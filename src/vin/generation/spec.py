"""Strategy specs: a strategy with its settings, as `vin bench` and `vin eval --strategies` take them.

A strategy spec is a strategy name followed by `:`-separated settings, e.g. `vin:shared:k12`:

| setting       | means                                                                |
| ------------- | -------------------------------------------------------------------- |
| `kN`          | local context of N latent frames (generation option context_frames)   |
| `shared`      | model.context_mode=shared (borrowed keys/values, nothing recomputed)  |
| `recompute`   | model.context_mode=recompute (the paper)                              |
| `3d`          | model.attention=3d                                                    |
| `factorised`  | model.attention=factorised and model.coupling=cross (STDiT-like)      |
| `key=value`   | any model config key or generation option, e.g. `coupling=cross`      |
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

import yaml

from ..config import ModelConfig
from ..errors import VinError
from .options import STRATEGIES, GenerationOptions

MODEL_KEYS = {f.name for f in fields(ModelConfig)}
OPTION_KEYS = {f.name for f in fields(GenerationOptions)} - {"frames", "steps", "seed", "progress"}
ALIASES: dict[str, dict[str, Any]] = {
    "shared": {"context_mode": "shared"},
    "recompute": {"context_mode": "recompute"},
    "3d": {"attention": "3d"},
    "factorised": {"attention": "factorised", "coupling": "cross"},
}


@dataclass(frozen=True)
class StrategySpec:
    """One column of a benchmark: a strategy and the settings it runs with."""

    label: str  # as written, e.g. "vin:shared:k12"
    strategy: str  # one of STRATEGIES
    model: tuple[tuple[str, Any], ...] = ()  # model config overrides
    options: tuple[tuple[str, Any], ...] = ()  # generation option overrides


def parse_strategy(text: str) -> StrategySpec:
    name, *settings = text.strip().split(":")
    if name not in STRATEGIES:
        raise VinError(f"unknown strategy {name!r} in {text!r}; choose from {', '.join(STRATEGIES)}")
    model: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for setting in settings:
        if setting in ALIASES:
            model.update(ALIASES[setting])
        elif re.fullmatch(r"k\d+", setting):
            options["context_frames"] = int(setting[1:])
        elif "=" in setting:
            key, value = setting.split("=", 1)
            target = model if key in MODEL_KEYS else options if key in OPTION_KEYS else None
            if target is None:
                raise VinError(f"{text!r}: {key!r} is neither a model config key nor a generation option")
            target[key] = yaml.safe_load(value)
        else:
            raise VinError(f"{text!r}: unknown setting {setting!r}; use kN, shared, recompute, 3d, factorised or key=value")
    return StrategySpec(text.strip(), name, tuple(sorted(model.items())), tuple(sorted(options.items())))


def parse_strategies(text: str) -> list[StrategySpec]:
    """`vin,full,vin:shared:k12` -> specs, in order; labels must be unique."""
    specs = [parse_strategy(part) for part in text.split(",") if part.strip()]
    if not specs:
        raise VinError("no strategies given; e.g. --strategies vin,full")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise VinError(f"a strategy is listed twice in {text!r}")
    return specs
