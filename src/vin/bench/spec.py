"""What a benchmark runs: strategies with their settings, at lengths given in video frames.

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
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterator

import torch
import yaml

from ..config import Config, ModelConfig
from ..errors import VinError
from ..generation.strategies import STRATEGIES, GenerationOptions
from ..model.vin import VINModel

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


def parse_frames(text: str) -> list[int]:
    """`64,128,256` -> [64, 128, 256] (video frames)."""
    try:
        frames = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise VinError(f"frames must be comma-separated integers, e.g. 64,128,256; got {text!r}") from None
    if not frames or min(frames) <= 0:
        raise VinError(f"frames must be positive integers, e.g. 64,128,256; got {text!r}")
    return frames


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Torch's default generator seeded inside the block and restored after (module initialisers draw from it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@dataclass
class BenchSetup:
    """A config resolved for benchmarking: builds each spec's model and maps video frames to latent frames."""

    config: Config
    seed: int = 0

    def frame_size(self) -> tuple[int, int]:
        """The (height, width) of one (latent) frame the model sees."""
        size = self.config.model.sample_size
        return self.config.latent.height or size, self.config.latent.width or size

    def latent_frames(self, frames: int) -> int:
        """Video frames -> the model's (latent) frames, through the autoencoder's temporal compression."""
        lat = self.config.latent
        if lat.video_frames <= 0 or lat.latent_frames <= 0:
            raise VinError("latent.video_frames and latent.latent_frames must be positive")
        if (frames * lat.latent_frames) % lat.video_frames:
            raise VinError(f"{frames} video frames do not make a whole number of latent frames "
                           f"({lat.video_frames} -> {lat.latent_frames}); use a multiple of {lat.video_frames}")  # fmt: skip
        return frames * lat.latent_frames // lat.video_frames

    def model_config(self, spec: StrategySpec) -> dict[str, Any]:
        return {**asdict(self.config.model), **dict(spec.model)}

    def build(self, spec: StrategySpec, device: str | torch.device = "meta", dtype: torch.dtype = torch.float32) -> VINModel:
        """The spec's model, randomly initialised from `seed`, in eval mode, without gradients."""
        with _seeded(self.seed), torch.device(device):
            model = VINModel(**self.model_config(spec))
        if dtype != torch.float32:  # nn.Module.to: diffusers' own warns about modules it would keep in fp32 (none here)
            torch.nn.Module.to(model, dtype=dtype)
        return model.eval().requires_grad_(False)

    def options(self, spec: StrategySpec, frames: int, context_frames: int | None = None) -> GenerationOptions:
        """One denoising step of `frames` video frames with the spec's options (`context_frames`: the run's default K)."""
        extra = dict(spec.options)
        if context_frames is not None:
            extra.setdefault("context_frames", context_frames)
        return GenerationOptions(frames=self.latent_frames(frames), steps=1, seed=self.seed, progress=False, **extra)

    def context_frames(self, spec: StrategySpec, options: GenerationOptions) -> int:
        """The K a strategy runs with: 0 for `full` and `spectral`, which have one window."""
        if spec.strategy in ("full", "spectral"):
            return 0
        return self.model_config(spec)["context_frames"] if options.context_frames is None else options.context_frames
