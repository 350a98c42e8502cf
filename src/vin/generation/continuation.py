"""Continuing a given video: its first frames are kept, the rest is generated (image-to-video with one frame).

A request's given video is checked against the model before any work (`check_init`: frames, size, the
autoencoder's frame grouping), then brought into the model's space (`init_frames`: pixels in [-1, 1], or
latents from the model's own autoencoder). Sampling keeps the given frames (`vin.diffusion.sampling.Known`):
at every step they are the given frames noised to the step's level, so the VIN reads them with the rest of
the video and the chunks beside them take them as context.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import VinError
from ..model.protocol import VideoModel
from .options import DEFAULTS, GenerationOptions
from .strategies import Plan


def load_init_video(video: str | Path | np.ndarray | torch.Tensor) -> np.ndarray:
    """A given video as (T, H, W, 3) uint8 frames: a file (.mp4, .gif, any format PyAV reads, or .npy of frames)
    or frames already in memory (a `Generation.video`, say)."""
    if isinstance(video, (str, Path)):
        from ..videos import read_video

        video = read_video(video)
    if isinstance(video, torch.Tensor):
        video = video.cpu().numpy()
    if not isinstance(video, np.ndarray) or video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        what = f"{video.dtype} {tuple(video.shape)}" if isinstance(video, np.ndarray) else type(video).__name__
        raise VinError(f"the init video must be (T, H, W, 3) uint8 RGB frames (a video file, or vin's own output), got {what}")
    if video.shape[0] == 0:
        raise VinError("the init video has no frames")
    return video


def read_init(options: GenerationOptions, video: str | Path | np.ndarray | torch.Tensor | None, world: int = 1) -> np.ndarray | None:
    """A request's video to continue, read and shaped (T, H, W, 3) uint8 (None without one), refused where it cannot
    apply: `init_frames` without a video, several processes. Needs no model: the CLI calls it before loading one."""
    if video is None:
        if options.init_frames is not None:
            raise VinError("--init-frames (init_frames=) counts the frames kept from --init-video (init_video=): give the video")
        if options.init_mode != DEFAULTS["init_mode"]:
            raise VinError(f"--init-mode {options.init_mode} (init_mode=) says how --init-video's frames are given: give the video")
        return None
    if world > 1:
        raise VinError("a continuation (--init-video) runs in one process: drop --nproc")
    return load_init_video(video)


def check_init(model: VideoModel, p: Plan, options: GenerationOptions, video: np.ndarray) -> np.ndarray:
    """The given frames of a request, checked against the model and the plan before any work: (G, H, W, 3) uint8.

    G is `options.init_frames` (None: the whole video); they must leave frames to generate and, for an
    autoencoder that groups frames in time (Wan's 4x), be 1 + a multiple of its factor. A video of another frame
    size is refused, unless it is an exact multiple of it (an mp4 written with --upscale): it is then reduced by
    averaging, with a warning.
    """
    decoder = model.latent_decoder
    spatial, temporal = (decoder.spatial, decoder.temporal) if decoder is not None else (1, 1)
    count = video.shape[0] if options.init_frames is None else options.init_frames
    if count > video.shape[0]:
        raise VinError(f"init_frames={count} but the init video has only {video.shape[0]} frames")
    total = 1 + (p.frames - 1) * temporal if temporal > 1 else p.frames  # the output's video frames
    if count >= total:
        raise VinError(f"the init video gives {count} frames and the output has {total}: nothing is left to generate; "
                       f"ask for more frames (--frames) or give fewer (--init-frames)")  # fmt: skip
    if temporal > 1 and (count - 1) % temporal:
        low = 1 + (count - 1) // temporal * temporal
        raise VinError(f"init_frames={count}: this model's autoencoder encodes the first frame alone and then groups of "
                       f"{temporal}, so give 1 + a multiple of {temporal} frames, e.g. {low}")  # fmt: skip
    frames = video[:count]
    height, width = p.size[0] * spatial, p.size[1] * spatial
    h, w = frames.shape[1:3]
    if (h, w) != (height, width):
        factor = h // height
        if factor < 2 or (h, w) != (height * factor, width * factor):
            raise VinError(f"the init video is {h}x{w} and this request makes {height}x{width} frames: give a video of that "
                           "size, or --height/--width of the video's (where the model takes them)")  # fmt: skip
        warnings.warn(f"the init video is {h}x{w}, {factor} times the {height}x{width} frames made: reduced by averaging "
                      f"{factor}x{factor} pixels (as written with --upscale {factor})", stacklevel=2)  # fmt: skip
        frames = frames.reshape(count, height, factor, width, factor, 3).mean(axis=(2, 4)).round().astype(np.uint8)
    return frames


def encode_init(model: VideoModel, frames: np.ndarray) -> torch.Tensor:
    """Given (G, H, W, 3) uint8 frames -> the model's clean input (1, C, G', h, w): pixels in [-1, 1], or latents
    encoded with the model's own autoencoder (G' = 1 + (G - 1) / its temporal factor)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1  # (1, 3, G, H, W)
    if model.latent_decoder is None:
        return x.to(model.device)
    return model.latent_decoder.autoencoder(model.device).encode(x.to(model.device)).to(model.device)
