"""Videos in and out: (T, H, W, 3) uint8 frames to and from .mp4 (H.264), .gif and .npy, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import VinError
from .files import atomic_path, check_writable

VIDEO_SUFFIXES = (".mp4", ".gif", ".npy")


def check_output_path(path: str | Path) -> Path:
    """Fails before any work if the output video cannot be written."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise VinError(f"output {path} must end in one of {', '.join(VIDEO_SUFFIXES)}")
    return check_writable(path, f"give a file name such as {path / 'video.mp4'}")


def check_video_settings(fps: int, upscale: int) -> None:
    """Frame rate and pixel enlargement of an mp4 / gif, checked before any frame is made."""
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or not 1 <= fps <= 240:
        raise VinError(f"fps must be a whole number of frames per second in [1, 240], got {fps!r}")
    if isinstance(upscale, bool) or not isinstance(upscale, (int, np.integer)) or not 1 <= upscale <= 64:
        raise VinError(f"upscale must be a whole number in [1, 64], got {upscale!r}")


def to_uint8(video) -> np.ndarray:
    """(C, T, H, W) torch tensor in [-1, 1] -> (T, H, W, 3) uint8."""
    import torch

    x = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def write_video(frames: np.ndarray, path: str | Path, fps: int = 16, upscale: int = 1) -> Path:
    """Writes (T, H, W, 3) uint8 frames to .mp4 (H.264), .gif or .npy (raw, lossless), atomically.

    `upscale` enlarges each pixel to an upscale x upscale block (mp4 / gif only), for viewing.
    """
    path = check_output_path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VinError(f"frames must be a (T, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    check_video_settings(fps, upscale)
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
            _write_mp4(frames, tmp, int(fps))
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
