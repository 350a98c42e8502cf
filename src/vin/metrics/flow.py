"""Dense optical flow between consecutive frames, with OpenCV (model-free), and warping by it.

Small frames (the default model makes 32x32) are upsampled before the flow is computed, because DIS and
Farneback work on patches of several pixels; large frames are downsampled to a short side of 256 to keep
evaluation fast. The flow is given back in the video's own pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vin.errors import VinError

FLOW_METHODS = ("dis", "farneback")


@dataclass
class FlowField:
    """Flow between consecutive frames, at the working resolution."""

    forward: np.ndarray  # (T-1, h, w, 2) from frame t to t+1, in working pixels (x, y)
    backward: np.ndarray | None  # (T-1, h, w, 2) from frame t+1 to t (None when not asked for)
    frames: np.ndarray  # (T, h, w, 3) float32 in [0, 1]: the frames at the working resolution
    scale: float  # working pixels per video pixel

    def magnitude(self) -> np.ndarray:
        """Forward flow magnitude in the video's own pixels: (T-1, h, w)."""
        return np.linalg.norm(self.forward, axis=-1) / self.scale


def working_frames(frames: np.ndarray, min_side: int, max_side: int = 256) -> tuple[np.ndarray, float]:
    """Frames (T, H, W, 3) uint8 resized so the short side lies in [min_side, max_side]: float32 [0, 1], scale."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VinError(f"expected frames of shape (T, H, W, 3), got {tuple(frames.shape)}")
    h, w = frames.shape[1:3]
    scale = min(max(1.0, min_side / min(h, w)), max_side / min(h, w))
    out = frames.astype(np.float32) / 255.0
    if scale != 1.0:
        size = (round(w * scale), round(h * scale))
        interp = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
        out = np.stack([cv2.resize(f, size, interpolation=interp) for f in out])
        scale = size[0] / w
    return out, scale


def _flow_fn(method: str):
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return lambda a, b: dis.calc(a, b, None)
    if method == "farneback":
        return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    raise VinError(f"unknown flow method {method!r}: choose one of {', '.join(FLOW_METHODS)}")


def optical_flow(frames: np.ndarray, method: str = "dis", min_side: int = 128, backward: bool = True) -> FlowField:
    """Forward (and backward) flow of every consecutive pair of frames (T, H, W, 3) uint8."""
    if len(frames) < 2:
        raise VinError("optical flow needs a video of at least 2 frames")
    work, scale = working_frames(frames, min_side)
    gray = [cv2.cvtColor((f * 255.0 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY) for f in work]
    flow = _flow_fn(method)
    fwd = np.stack([flow(a, b) for a, b in zip(gray[:-1], gray[1:])]).astype(np.float32)
    bwd = np.stack([flow(b, a) for a, b in zip(gray[:-1], gray[1:])]).astype(np.float32) if backward else None
    return FlowField(fwd, bwd, work, scale)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Samples `image` (h, w, C) at x + flow(x): with the flow from frame t+1 to t, this brings frame t to t+1."""
    h, w = flow.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), axis=-1)
    coords = grid + flow
    return cv2.remap(image, coords[..., 0], coords[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def occlusion_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Pixels of frame t+1 whose backward flow is consistent with the forward flow (Lai et al. 2018's check).

    A pixel is kept when |b + f(x + b)|^2 < 0.01 (|b|^2 + |f(x + b)|^2) + 0.5; returns (h, w) bool.
    """
    f_at = warp(forward, backward)
    diff = np.sum((backward + f_at) ** 2, axis=-1)
    bound = 0.01 * (np.sum(backward**2, axis=-1) + np.sum(f_at**2, axis=-1)) + 0.5
    return diff < bound
