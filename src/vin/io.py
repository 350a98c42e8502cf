"""Files in and out: checkpoints (safetensors only) and videos (mp4 / gif / npy), written atomically."""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import VinError
from .model.vin import VINModel

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
CONFIG_NAME = "config.json"
VIDEO_SUFFIXES = (".mp4", ".gif", ".npy")


SHIPPED = ("default", "full")  # the VIN model, and the full-attention baseline trained the same way


def default_checkpoint(name: str = "default") -> Path:
    """A small model that ships inside the package: `default` (the VIN model) or `full` (its full-attention
    baseline, trained on whole clips with the same data and budget)."""
    if name not in SHIPPED:
        raise VinError(f"no shipped checkpoint named {name!r}; shipped: {', '.join(SHIPPED)}")
    return Path(__file__).parent / "checkpoints" / name


def checkpoint_path(text: str | Path | None) -> Path:
    """A checkpoint argument: None or a shipped name ("default", "full") -> its folder, anything else a path."""
    if text is None:
        return default_checkpoint()
    return default_checkpoint(str(text)) if str(text) in SHIPPED else Path(text).expanduser()


def load_model(
    path: str | Path | None = None, device: str | torch.device = "cpu", autoencoder: str | Path | None = None
) -> VINModel:
    """Loads a checkpoint directory (config.json + diffusion_pytorch_model.safetensors) in eval mode.

    Never unpickles: weights are read with safetensors. Any problem is a VinError naming the file.
    A model trained in latent space (its folder holds autoencoder.json, or its train.yaml names
    data.autoencoder) gets `model.latent_decoder`, which decodes its samples with that autoencoder
    (loaded on first use); `autoencoder` points to another copy of it (a folder, as save_pretrained writes).
    """
    path = Path(path) if path is not None else default_checkpoint()
    hint = "a checkpoint directory holds config.json and diffusion_pytorch_model.safetensors, as written by `vin train`"
    if not path.is_dir():
        raise VinError(f"checkpoint {path} does not exist or is not a directory ({hint})")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise VinError(f"checkpoint {path} has no {name} ({hint})")
    try:
        meta = json.loads((path / CONFIG_NAME).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VinError(f"checkpoint {path}: {CONFIG_NAME} is not valid JSON ({err}); the folder is damaged or not a "
                       "vin checkpoint: point --checkpoint at a folder written by `vin train`") from None
    name = meta.get("_class_name")
    if name != VINModel.__name__:
        what = f"a {name!r}" if name else "no model class (_class_name)"
        raise VinError(f"checkpoint {path}: its {CONFIG_NAME} names {what}, not VINModel; is it a vin checkpoint? ({hint})")
    model = _build(path, meta)
    try:
        weights = load_file(str(path / WEIGHTS_NAME))
    except (SafetensorError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VinError(f"checkpoint {path} could not be loaded: {reason} (is {WEIGHTS_NAME} complete?)") from None
    mismatch = first_mismatch(model.state_dict(), weights)
    if mismatch:
        raise VinError(f"checkpoint {path} could not be loaded: its {WEIGHTS_NAME} does not match its {CONFIG_NAME} "
                       f"({mismatch}); the two files come from different models")  # fmt: skip
    model.load_state_dict(weights)
    model = model.to(device).eval()
    model.latent_decoder = _latent_decoder(path, model, autoencoder)
    return model


def _build(path: Path, meta: dict) -> VINModel:
    """A freshly built VINModel from a checkpoint's config.json: every setting known, every value valid."""
    from .config import drop_retired

    settings = drop_retired("model", {k: v for k, v in meta.items() if not k.startswith("_")}, f"checkpoint {path}")
    known = set(inspect.signature(VINModel.__init__).parameters) - {"self"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise VinError(f"checkpoint {path}: its {CONFIG_NAME} has settings this version of vin does not know "
                       f"({', '.join(unknown)}); it was written by another version")  # fmt: skip
    try:
        return VINModel(**settings)
    except (VinError, TypeError, ValueError) as err:
        raise VinError(f"checkpoint {path} has a bad config: {err}") from None


def first_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str | None:
    """The first tensor that a model's state dict and a weights file disagree on (missing, unexpected, shape), or None."""
    for name in expected:
        if name not in found:
            return f"no tensor {name!r}"
        if tuple(found[name].shape) != tuple(expected[name].shape):
            return f"{name!r} is {tuple(found[name].shape)}, the config makes {tuple(expected[name].shape)}"
    extra = sorted(set(found) - set(expected))
    return f"an unexpected tensor {extra[0]!r}" if extra else None


def _latent_decoder(path: Path, model: VINModel, autoencoder: str | Path | None):
    from .data.latent import LatentDecoder, LatentSpace

    space = LatentSpace.read(path)
    if space is None and autoencoder is None:
        return None
    if space is None:  # no record, but an autoencoder given: scaled as its config.json says
        space = LatentSpace.of_folder(autoencoder)
    decoder = LatentDecoder(space, autoencoder)
    channels = decoder.space.latent_channels
    if channels and channels != model.config.in_channels:
        raise VinError(f"checkpoint {path} makes {model.config.in_channels}-channel frames, but the autoencoder "
                       f"{str(decoder.folder)!r} has {channels} latent channels; is it the one the model was trained with?")  # fmt: skip
    return decoder


def check_output_path(path: str | Path) -> Path:
    """Fails before any work if the output cannot be written."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise VinError(f"output {path} must end in one of {', '.join(VIDEO_SUFFIXES)}")
    if not path.parent.is_dir():
        raise VinError(f"output folder {path.parent} does not exist; create it first (mkdir -p {path.parent})")
    if path.is_dir():
        raise VinError(f"output {path} is a directory; give a file name such as {path / 'video.mp4'}")
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[str]:
    """A temporary file name next to `path`; on leaving the block without error the file is renamed to `path`.

    Writers fill the temporary file; a failure anywhere removes it, so no half-written output is left.
    The file gets the permissions of any other new file (mkstemp would leave 0600).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes `data` to `path` atomically (see `atomic_path`), after checking the folder."""
    path = Path(path)
    if not path.parent.is_dir():
        raise VinError(f"output folder {path.parent} does not exist; create it first (mkdir -p {path.parent})")
    if path.is_dir():
        raise VinError(f"output {path} is a directory; give a file name")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """(C, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    x = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def write_video(frames: np.ndarray, path: str | Path, fps: int = 16, upscale: int = 1) -> Path:
    """Writes (T, H, W, 3) uint8 frames to .mp4 (H.264), .gif or .npy (raw, lossless), atomically.

    `upscale` enlarges each pixel to an upscale x upscale block (mp4 / gif only), for viewing.
    """
    path = check_output_path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VinError(f"frames must be a (T, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    suffix = path.suffix.lower()
    if suffix != ".npy" and upscale > 1:
        frames = frames.repeat(upscale, axis=1).repeat(upscale, axis=2)
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, frames)
        elif suffix == ".gif":
            from PIL import Image

            images = [Image.fromarray(f) for f in frames]
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        else:
            _write_mp4(frames, tmp, fps)
    return path


def _write_mp4(frames: np.ndarray, path: str, fps: int) -> None:
    import av

    t, h, w, _ = frames.shape
    if h % 2 or w % 2:  # yuv420p needs even sizes: pad by one edge pixel
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    with av.open(path, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_video(path: str | Path) -> np.ndarray:
    """Reads a video file (any format PyAV decodes) or a .npy of frames: (T, H, W, 3) uint8."""
    path = Path(path)
    if not path.is_file():
        raise VinError(f"video {path} does not exist")
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    import av

    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, IndexError) as err:
        raise VinError(f"video {path} could not be decoded: {err}") from None
    if not frames:
        raise VinError(f"video {path} has no frames")
    return np.stack(frames)
