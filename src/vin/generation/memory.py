"""Will the requested video fit? An estimate of sampling's peak memory, checked before any work.

Sampling holds a few copies of the video and, per model call, the activations of every window the
call evaluates (all chunks run as one batch). Measured on the CPU with `bench.memory.LiveTensorMemory`
(one step of the shipped 32x32 model): about 16 activation copies of the call's tokens (vin 256
frames: 82 MiB for 10240 tokens of width 128; full: 16.5; overlap: 14.7). Attention runs in fused
kernels (no L x L scores) on CPU and GPU alike. The estimate takes 20 copies, plus 10 of the video.
A continuation with reconstruction guidance keeps the activations for a backward pass: measured the same way
(vin, 128 frames, 16 given), 218 copies instead of 19 at depth 6, so 35 more per block.
"""

from __future__ import annotations

import os

import torch

from ..errors import VinError
from ..model.protocol import VideoModel

ACTIVATION_COPIES = 20
VIDEO_COPIES = 10
BACKWARD_COPIES_PER_BLOCK = 35


def frame_pixels(size: int | tuple[int, int]) -> int:
    """Pixels (or latent positions) of one frame of `model.config.sample_size`: square, or (height, width)."""
    h, w = (size, size) if isinstance(size, int) else size
    return h * w


def call_tokens(model: VideoModel, strategy: str, plan) -> int:
    """DiT tokens one model call of `strategy` evaluates (all its windows together)."""
    cfg = model.config
    per_frame = frame_pixels(plan.size) // cfg.patch_hw**2
    window = (plan.context_frames + plan.chunk_frames) // cfg.patch_t * per_frame  # a chunk with its context
    windows = {
        "vin": plan.window_batch,
        "independent": plan.chunks,
        "overlap": len(plan.window_starts),
        "freenoise": len(plan.window_starts),
        "autoregressive": 2,
        "fifo": plan.chunks,
    }
    if strategy in ("full", "spectral"):
        return 2 * plan.frames // cfg.patch_t * per_frame  # spectral: the global and the local branch
    extra = cfg.vin_tokens if cfg.coupling == "concat" else 0
    return windows[strategy] * (window + extra)


def estimate_bytes(model: VideoModel, strategy: str, plan, guidance: float = 1.0, backward: bool = False) -> int:
    """Peak bytes of sampling one video with `strategy` (see the module docstring), weights included; `backward`:
    every call is differentiated (a continuation's reconstruction guidance)."""
    cfg = model.config
    batch = 2 if guidance != 1.0 else 1  # classifier-free guidance doubles every call
    video = plan.frames * cfg.in_channels * frame_pixels(plan.size) * 4
    copies = ACTIVATION_COPIES + (BACKWARD_COPIES_PER_BLOCK * cfg.depth if backward else 0)
    activations = call_tokens(model, strategy, plan) * model.token_width * 4 * copies * batch
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return video * VIDEO_COPIES + activations + weights


def available_bytes(device: torch.device) -> int | None:
    """Memory free for new tensors on `device`, or None when it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None


def check_memory(model: VideoModel, strategy: str, plan, guidance: float = 1.0, world: int = 1, backward: bool = False) -> None:
    """Raises a VinError, before any work, when the estimate exceeds what the device has free."""
    need = estimate_bytes(model, strategy, plan, guidance, backward) // world
    free = available_bytes(model.device)
    if free is None or need <= free:
        return
    fit = max(plan.chunk_frames, int(plan.frames * free / need) // plan.chunk_frames * plan.chunk_frames)
    also = "; or continue with --init-guidance 0 (init_guidance=0: no backward pass)" if backward else ""
    if strategy == "vin" and plan.window_batch > 1 and model.config.context_mode != "shared":
        also += f"; or run fewer windows a call (--window-batch / window_batch= below {plan.window_batch})"
    raise VinError(f"{plan.frames} frames with {strategy} need about {need / 2**30:.1f} GiB, but {model.device} has "
                   f"{free / 2**30:.1f} GiB free; ask for fewer frames (about {fit} would fit){also}")  # fmt: skip
