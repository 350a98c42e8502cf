"""What a benchmark runs: strategy specs (`vin.generation.spec`) at lengths given in video frames, on a
model built from a config (randomly initialised: cost does not depend on the weights)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import torch

from ..config import Config
from ..errors import VinError
from ..generation.options import GenerationOptions
from ..generation.spec import StrategySpec, parse_strategies, parse_strategy
from ..model.vin import VINModel

__all__ = ["BenchSetup", "StrategySpec", "parse_frames", "parse_strategies", "parse_strategy"]


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
        height, width = self.config.model.frame_size
        return self.config.latent.height or height, self.config.latent.width or width

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
