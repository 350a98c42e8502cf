"""`vin.WanVINPipeline`: a trained VIN on a downloaded Wan2.1 folder, called as diffusers' `WanPipeline` is.

    pipe = vin.WanVINPipeline.from_pretrained("Wan2.1-T2V-1.3B-Diffusers", vin="runs/wan", torch_dtype=torch.bfloat16,
                                              device="cuda")
    frames = pipe(prompt="a red kite over a beach", negative_prompt="blurry", num_frames=257,
                  num_inference_steps=30, guidance_scale=5.0, generator=torch.Generator().manual_seed(0)).frames[0]

`num_frames` counts video frames, as WanPipeline's does (4k + 1 for Wan2.1's VAE); the chunks are denoised in
parallel and the VIN reads the whole video (`strategy` and the other `vin.generate` options pass through: a
`prompt` per chunk as a list or a {first chunk: prompt} schedule, `init_video=` / `init_frames=` to continue one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import VinError

if TYPE_CHECKING:
    from ..model.protocol import VideoModel


@dataclass
class WanVINPipelineOutput:
    frames: list  # one video per prompt: (T, H, W, 3) float32 in [0, 1] ("np"), or uint8 ("uint8")


class WanVINPipeline:
    """A VIN run (`vin`) on a Wan2.1 pipeline folder; `__call__` takes WanPipeline's arguments."""

    def __init__(self, model: "VideoModel") -> None:
        self.model = model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, vin: str | Path,
                        torch_dtype: torch.dtype | None = None, device: str | torch.device = "cpu") -> "WanVINPipeline":  # fmt: skip
        """The run `vin` (a `vin train` output folder) on the Wan2.1 folder `pretrained_model_name_or_path` (a local
        path: nothing is downloaded), its backbone in `torch_dtype` (default: bf16 on CUDA, fp32 on the CPU)."""
        from ..checkpoint import load_model

        return cls(load_model(vin, device, backbone=pretrained_model_name_or_path, dtype=torch_dtype))

    def __call__(self, prompt: str | list[str] | dict[int, str], negative_prompt: str | None = None, num_frames: int = 81, height: int | None = None,
                 width: int | None = None, num_inference_steps: int = 50, guidance_scale: float = 5.0,
                 generator: torch.Generator | None = None, output_type: str = "np", strategy: str = "vin",
                 **options: Any) -> WanVINPipelineOutput:  # fmt: skip
        """One video of `num_frames` frames for `prompt` (WanPipeline's arguments; `generator`: its initial seed
        is the noise seed; `height` / `width` in pixels, default the run's frame size)."""
        from .api import generate
        from .options import make_options
        from .strategies import model_frames

        if output_type not in ("np", "uint8"):
            raise VinError(f"output_type must be np or uint8, got {output_type!r}")
        seed = generator.initial_seed() if generator is not None else 0
        negative = negative_prompt if guidance_scale != 1.0 else None
        latent = model_frames(self.model, strategy, make_options(num_frames, 1, 0, chunk_frames=options.get("chunk_frames")))
        video = generate(self.model, latent, num_inference_steps, seed, strategy, prompt=prompt,
                         negative_prompt=negative, guidance=guidance_scale, height=height, width=width,
                         **options).video.numpy()  # fmt: skip
        return WanVINPipelineOutput([video if output_type == "uint8" else video.astype(np.float32) / 255.0])
