"""Training in the latent space of a local diffusers autoencoder (optional; pixels are the default).

`data.autoencoder` names a folder holding a diffusers `AutoencoderKL` (per-frame, an image VAE),
`AutoencoderKLCogVideoX` or `AutoencoderKLWan` (causal video VAEs that also compress time): its config.json and
safetensors weights, as `save_pretrained` writes them. Nothing is downloaded and nothing is
unpickled. The model then trains on the autoencoder's scaled latents: `model.in_channels` must be
its latent channels and `model.sample_size` the frame size divided by its spatial factor.

Latents are the mean of the encoder's distribution (deterministic), `(mean - shift) * scaling_factor`;
Wan's VAE normalises per channel instead (`latents_mean`, `latents_std` in its config: shift = mean,
scale = 1 / std, recorded as lists).
With `data.cache_dir`, an image VAE's latents are cached per video (every frame, centre crop), so a
video is decoded and encoded once; a video VAE encodes each clip as it is drawn (its latents depend
on where the clip starts).

A model trained in latent space is exported with `autoencoder.json` beside its weights (`LatentSpace`:
the autoencoder's folder, kind, geometry and the scaling/shift factors used); `LatentDecoder` turns its
samples back into pixels with that autoencoder, loaded on first use.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ..errors import VinError
from ..files import atomic_write_bytes
from .cache import ShardCache, file_key
from .video_folder import BadVideo, ClipSpec, VideoFolder

KINDS = ("AutoencoderKL", "AutoencoderKLCogVideoX", "AutoencoderKLWan")
Factor = float | list[float]  # one latent scale / shift, or one per latent channel (Wan)
LATENT_FILE = "autoencoder.json"  # beside an exported latent-space model's weights
DECODE_FRAMES = 16  # an image VAE decodes this many frames per call (bounded memory on long videos)


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
    if meta["_class_name"] == "AutoencoderKLWan":  # time is halved by every down block marked in temperal_downsample
        down = meta.get("temperal_downsample", [False, True, True])
        return int(meta.get("z_dim", 16)), 2 ** (len(meta.get("dim_mult", [1, 2, 4, 4])) - 1), 2 ** sum(map(bool, down))
    levels = len(meta.get("block_out_channels", (64,))) - 1
    spatial = 2**levels
    temporal = 1
    if meta["_class_name"] == "AutoencoderKLCogVideoX":  # time is halved by the first log2(ratio) down blocks
        temporal = 2 ** min(int(math.log2(meta.get("temporal_compression_ratio", 4))), levels)
    return int(meta.get("latent_channels", 4)), spatial, temporal


def factors(meta: dict) -> tuple[Factor, Factor]:
    """(scale, shift) of an autoencoder config: latents = (mean - shift) * scale."""
    if meta["_class_name"] == "AutoencoderKLWan":
        channels = geometry(meta)[0]
        mean, std = meta.get("latents_mean") or [0.0] * channels, meta.get("latents_std") or [1.0] * channels
        return [1.0 / float(v) for v in std], [float(v) for v in mean]
    return float(meta.get("scaling_factor") or 1.0), float(meta.get("shift_factor") or 0.0)


def _broadcast(factor: Factor, z: torch.Tensor) -> torch.Tensor | float:
    """A factor shaped to multiply latents (B, C, T, h, w): per channel when it is a list."""
    if isinstance(factor, (list, tuple)):
        return torch.tensor(factor, dtype=z.dtype, device=z.device).view(1, -1, *([1] * (z.ndim - 2)))
    return factor


class Autoencoder:
    """Pixels (B, 3, T, H, W) in [-1, 1] <-> scaled latents (B, C, T', H/s, W/s).

    `scale`, `shift`: the latent scaling (default: the autoencoder config's `scaling_factor` and
    `shift_factor`); a checkpoint's recorded values are passed here so decoding inverts its training.
    """

    def __init__(
        self, path: str | Path, device: torch.device | str = "cpu", scale: Factor | None = None, shift: Factor | None = None
    ) -> None:
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
        own_scale, own_shift = factors(self.meta)
        self.scale: Factor = own_scale if scale is None else scale
        self.shift: Factor = own_shift if shift is None else shift

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
        return ((z - _broadcast(self.shift, z)) * _broadcast(self.scale, z)).float()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        # (B, C, T', h, w) -> (B, 3, T, H, W) in [-1, 1]; the inverse of `encode`'s scaling, then the VAE's decoder.
        # A video VAE decodes the whole latent video in one causal pass (diffusers steps through it two
        # latent frames at a time with a convolution cache); an image VAE decodes DECODE_FRAMES frames per call.
        z = z.to(self.device, self.vae.dtype)
        z = z / _broadcast(self.scale, z) + _broadcast(self.shift, z)
        if self.temporal > 1:
            x = self.vae.decode(z).sample
        else:
            b = z.shape[0]
            frames = z.transpose(1, 2).flatten(0, 1)  # (B*T, C, h, w)
            parts = [self.vae.decode(frames[i : i + DECODE_FRAMES]).sample for i in range(0, frames.shape[0], DECODE_FRAMES)]
            x = torch.cat(parts).unflatten(0, (b, -1)).transpose(1, 2)
        return x.float().clamp(-1, 1)


@dataclass(frozen=True)
class LatentSpace:
    """What decoding a latent-space model's samples needs: written to `autoencoder.json` at export."""

    autoencoder: str  # the autoencoder's folder (absolute)
    kind: str  # AutoencoderKL | AutoencoderKLCogVideoX | AutoencoderKLWan
    latent_channels: int
    spatial_factor: int
    temporal_factor: int
    scaling_factor: Factor  # latents = (mean - shift_factor) * scaling_factor; per channel for Wan
    shift_factor: Factor

    @classmethod
    def of(cls, ae: Autoencoder) -> "LatentSpace":
        return cls(str(ae.path.resolve()), ae.kind, ae.channels, ae.spatial, ae.temporal, ae.scale, ae.shift)

    @classmethod
    def of_folder(cls, path: str | Path) -> "LatentSpace":
        """The latent space of an autoencoder folder, scaled as its config.json says (no weights loaded)."""
        path = Path(path).expanduser()
        meta = autoencoder_meta(path)
        channels, spatial, temporal = geometry(meta)
        scale, shift = factors(meta)
        return cls(str(path.resolve()), meta["_class_name"], channels, spatial, temporal, scale, shift)

    def write(self, folder: Path) -> Path:
        """Writes `folder/autoencoder.json` atomically."""
        return atomic_write_bytes(folder / LATENT_FILE, (json.dumps(asdict(self), indent=1) + "\n").encode())

    @classmethod
    def read(cls, folder: str | Path) -> "LatentSpace | None":
        """A checkpoint's latent space: its autoencoder.json, else its train.yaml's data.autoencoder (runs
        exported before autoencoder.json existed, scaled as the autoencoder's config says); None for pixels."""
        folder = Path(folder)
        if (folder / LATENT_FILE).is_file():
            try:
                record = json.loads((folder / LATENT_FILE).read_text())
                return cls(**{f.name: record[f.name] for f in fields(cls)})
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
                raise VinError(f"checkpoint {folder}: {LATENT_FILE} is not a latent-space record ({type(err).__name__}: {err}); "
                               "export the model again with vin train") from None  # fmt: skip
        if (folder / "train.yaml").is_file():
            import yaml

            try:
                config = yaml.safe_load((folder / "train.yaml").read_text()) or {}
            except yaml.YAMLError:
                return None
            ae = (config.get("data") or {}).get("autoencoder") if isinstance(config, dict) else None
            if ae:  # kind "" (unknown): scaled as the autoencoder's own config.json says
                return cls(str(Path(ae).expanduser()), "", 0, 0, 0, 1.0, 0.0)
        return None


class LatentDecoder:
    """Latents (B, C, T', h, w) of a latent-space model -> pixels (B, 3, T, H, W) in [-1, 1].

    The autoencoder comes from `folder` (default: the one recorded at training) and is loaded on the first
    call, on the latents' device; its kind and geometry must match the record, and the record's scaling and
    shift factors invert the training encoding exactly. `autoencoder`: an already loaded one (training).
    """

    def __init__(self, space: LatentSpace, folder: str | Path | None = None, autoencoder: Autoencoder | None = None) -> None:
        self.folder = Path(folder).expanduser() if folder else Path(space.autoencoder)
        if not space.kind and (self.folder / "config.json").is_file():  # no record: scaled as the autoencoder says
            space = LatentSpace.of_folder(self.folder)
        self.space = space
        self.overridden = folder is not None
        self._ae = autoencoder

    @property
    def spatial(self) -> int:
        return max(1, self.space.spatial_factor)

    @property
    def temporal(self) -> int:
        return max(1, self.space.temporal_factor)

    def check(self) -> None:
        """The autoencoder folder is there and is the recorded kind and geometry (reads config.json only)."""
        if self._ae is not None:
            return
        how = "give the autoencoder's folder with --autoencoder DIR (vin generate / vin eval) or autoencoder=DIR (vin.load_model)"
        if not (self.folder / "config.json").is_file():
            what = "given" if self.overridden else "it was trained with"
            raise VinError(f"this model makes latents and needs the autoencoder {what} to decode them, but "
                           f"{str(self.folder)!r} {'has no config.json' if self.folder.is_dir() else 'does not exist'}; {how}")  # fmt: skip
        found = LatentSpace.of_folder(self.folder)
        want = self.space
        if want.kind and (found.kind, found.latent_channels, found.spatial_factor, found.temporal_factor) != (
            want.kind, want.latent_channels, want.spatial_factor, want.temporal_factor
        ):  # fmt: skip
            raise VinError(f"autoencoder {str(self.folder)!r} is a {found.kind} with {found.latent_channels} latent channels, "
                           f"{found.spatial_factor}x spatial and {found.temporal_factor}x temporal compression; the model was "
                           f"trained with a {want.kind} with {want.latent_channels}, {want.spatial_factor}x and "
                           f"{want.temporal_factor}x; {how}")  # fmt: skip

    def autoencoder(self, device: torch.device | str = "cpu") -> Autoencoder:
        if self._ae is None:
            self.check()
            self._ae = Autoencoder(self.folder, device, self.space.scaling_factor, self.space.shift_factor)
        return self._ae

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        ae = self.autoencoder(z.device)
        return ae.decode(z).to(z.device)


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
        key = file_key(info.path, f"latents-{self.folder.size_key}-{file_key(self.ae.path / 'config.json', 'ae')}")
        cached = self.cache.get(key)
        if cached is None:
            frames = self.folder.crop(self.folder.frames(video), (0.5, 0.5))  # (N, H, W, 3)
            x = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
            parts = [self.ae.encode(x[:, :, i : i + 16]) for i in range(0, x.shape[2], 16)]
            cached = torch.cat(parts, dim=2)[0].transpose(0, 1).to(torch.float16).numpy()  # (N, C, h, w)
            self.cache.put(key, cached)
        return cached

    def _read_latents(self, spec: ClipSpec) -> np.ndarray:
        """A clip's latents (T, C, h, w): from the video's cached latents, or encoded now if it is too long to cache."""
        if self.folder.cacheable(spec.video):
            latents = self._latents(spec.video)
            if spec.indices[-1] >= len(latents):  # as the pixel reader: a stream shorter than its header says
                raise BadVideo(f"the stream ends before frame {len(latents)} (truncated file?)")
            return np.asarray(latents[spec.indices])
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
