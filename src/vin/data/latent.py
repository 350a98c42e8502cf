"""Training in the latent space of a local diffusers autoencoder (optional; pixels are the default).

`data.autoencoder` names a folder holding a diffusers `AutoencoderKL` (per-frame, an image VAE) or
`AutoencoderKLCogVideoX` (a causal video VAE that also compresses time): its config.json and
safetensors weights, as `save_pretrained` writes them. Nothing is downloaded and nothing is
unpickled. The model then trains on the autoencoder's scaled latents: `model.in_channels` must be
its latent channels and `model.sample_size` the frame size divided by its spatial factor.

Latents are the mean of the encoder's distribution (deterministic), `(mean - shift) * scaling_factor`.
With `data.cache_dir`, an image VAE's latents are cached per video (every frame, centre crop), so a
video is decoded and encoded once; a video VAE encodes each clip as it is drawn (its latents depend
on where the clip starts).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import VinError
from .cache import ShardCache, file_key
from .video_folder import ClipSpec, VideoFolder

KINDS = ("AutoencoderKL", "AutoencoderKLCogVideoX")


def autoencoder_meta(path: str | Path) -> dict:
    """The autoencoder's config.json, checked, without loading its weights."""
    path = Path(path).expanduser()
    hint = "data.autoencoder must be a folder written by a diffusers autoencoder's save_pretrained (config.json + safetensors)"
    if not (path / "config.json").is_file():
        raise VinError(f"data.autoencoder={str(path)!r} has no config.json ({hint})")
    try:
        meta = json.loads((path / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VinError(f"data.autoencoder: {path / 'config.json'} is not valid JSON ({err})") from None
    if meta.get("_class_name") not in KINDS:
        raise VinError(f"data.autoencoder: {path} holds a {meta.get('_class_name')!r}; supported: {', '.join(KINDS)}")
    return meta


def geometry(meta: dict) -> tuple[int, int, int]:
    """(latent channels, spatial factor, temporal factor) of an autoencoder config."""
    levels = len(meta.get("block_out_channels", (64,))) - 1
    spatial = 2**levels
    temporal = 1
    if meta["_class_name"] == "AutoencoderKLCogVideoX":  # time is halved by the first log2(ratio) down blocks
        temporal = 2 ** min(int(math.log2(meta.get("temporal_compression_ratio", 4))), levels)
    return int(meta.get("latent_channels", 4)), spatial, temporal


class Autoencoder:
    """Pixels (B, 3, T, H, W) in [-1, 1] <-> scaled latents (B, C, T', H/s, W/s)."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        import diffusers

        self.path = Path(path).expanduser()
        self.meta = autoencoder_meta(self.path)
        self.kind = self.meta["_class_name"]
        self.channels, self.spatial, self.temporal = geometry(self.meta)
        try:
            vae = getattr(diffusers, self.kind).from_pretrained(
                self.path, use_safetensors=True, local_files_only=True, low_cpu_mem_usage=False
            )
        except Exception as err:  # missing or mismatched weights: one line, not diffusers' stack
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise VinError(f"data.autoencoder={str(self.path)!r} could not be loaded: {reason}") from None
        self.vae = vae.to(device).eval().requires_grad_(False)
        self.scale = float(self.meta.get("scaling_factor") or 1.0)
        self.shift = float(self.meta.get("shift_factor") or 0.0)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def pixel_frames(self, latent_frames: int) -> int:
        """Pixel frames that encode to `latent_frames` latent frames."""
        return 1 + (latent_frames - 1) * self.temporal if self.temporal > 1 else latent_frames

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 3, T, H, W) in [-1, 1] -> (B, C, T', h, w)
        x = x.to(self.device, self.vae.dtype)
        if self.temporal > 1:
            z = self.vae.encode(x).latent_dist.mean
        else:
            b = x.shape[0]
            frames = x.transpose(1, 2).flatten(0, 1)  # (B*T, 3, H, W)
            z = self.vae.encode(frames).latent_dist.mean.unflatten(0, (b, -1)).transpose(1, 2)
        return ((z - self.shift) * self.scale).float()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        # (B, C, T', h, w) -> (B, 3, T, H, W) in [-1, 1]
        z = (z.to(self.device, self.vae.dtype) / self.scale) + self.shift
        if self.temporal > 1:
            x = self.vae.decode(z).sample
        else:
            b = z.shape[0]
            x = self.vae.decode(z.transpose(1, 2).flatten(0, 1)).sample.unflatten(0, (b, -1)).transpose(1, 2)
        return x.float().clamp(-1, 1)


class LatentVideos:
    """A `VideoFolder` seen through an autoencoder: `batch` gives latent clips (B, C, T, h, w)."""

    def __init__(self, folder: VideoFolder, autoencoder: Autoencoder, cache: ShardCache | None = None) -> None:
        self.folder = folder
        self.ae = autoencoder
        self.cache = cache if autoencoder.temporal == 1 else None
        if self.cache is not None and folder.config.crop != "center":
            raise VinError("cached latents are of the centre crop: use data.crop=center with data.autoencoder and data.cache_dir")

    def _latents(self, video: int) -> np.ndarray:
        """Every frame's latents of a video (N, C, h, w) float16, centre crop; cached."""
        info = self.folder.videos[video]
        key = file_key(info.path, f"latents-{self.folder.size}-{file_key(self.ae.path / 'config.json', 'ae')}")
        cached = self.cache.get(key)
        if cached is None:
            frames = self.folder.crop(self.folder.frames(video), (0.5, 0.5))  # (N, S, S, 3)
            x = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
            parts = [self.ae.encode(x[:, :, i : i + 16]) for i in range(0, x.shape[2], 16)]
            cached = torch.cat(parts, dim=2)[0].transpose(0, 1).to(torch.float16).numpy()  # (N, C, h, w)
            self.cache.put(key, cached)
        return cached

    def _read_latents(self, spec: ClipSpec) -> np.ndarray:
        """A clip's latents (T, C, h, w): from the video's cached latents, or encoded now if it is too long to cache."""
        if self.folder.cacheable(spec.video):
            return np.asarray(self._latents(spec.video)[spec.indices])
        x = torch.from_numpy(self.folder.read(spec)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        return self.ae.encode(x)[0].transpose(0, 1).to(torch.float16).cpu().numpy()

    def batch(
        self, generator: torch.Generator, batch: int, frames: int, shard: slice = slice(None)
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`batch` clips of `frames` latent frames: (B, C, frames, h, w), condition (B, ...) or None."""
        seeds = torch.randint(0, 2**62, (batch,), generator=generator).tolist()[shard]
        if self.cache is not None:
            results = [self.folder.sample(s, frames, self._read_latents) for s in seeds]
            z = torch.from_numpy(np.stack([r[1] for r in results])).float().transpose(1, 2)  # (B, C, T, h, w)
        else:
            results = [self.folder.sample(s, self.ae.pixel_frames(frames)) for s in seeds]
            x = torch.from_numpy(np.stack([r[1] for r in results])).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
            z = self.ae.encode(x).cpu()
        return z, self.folder.condition([r[0].video for r in results])

    def report(self) -> dict:
        return {**self.folder.report(), "autoencoder": str(self.ae.path), "latent_cache": self.cache is not None}

    def close(self) -> None:
        self.folder.close()
