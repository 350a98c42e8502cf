"""Motion metrics on optical flow: MAWE (StreamingT2V), dynamic degree and temporal flickering (VBench).

MAWE (motion-aware warp error, StreamingT2V): `W(V) / (c * OFS(V))`. `W` is the mean warp error: frame t
warped to t+1 by the optical flow, compared with frame t+1 (mean squared difference of RGB in [0, 1]
over the pixels that the forward-backward check finds unoccluded), averaged over pairs. `OFS` is the
optical-flow score: the mean flow magnitude over all pixels and pairs, in the video's own pixels. Dividing
by it keeps a video that barely moves from scoring well only because there is little to warp; below
`ofs_floor` (0.01) pixels per frame a video counts as still (so a still video's MAWE is defined: 0). `c` only
rescales; we use 1. Lower is better.
"""

from __future__ import annotations

import numpy as np

from vin.metrics.flow import FlowField, occlusion_mask, optical_flow, warp

OFS_FLOOR = 0.01  # pixels per frame


def warp_errors(flow: FlowField) -> np.ndarray:
    """Per pair: mean squared error between frame t+1 and frame t warped to it, on unoccluded pixels: (T-1,)."""
    errors = np.zeros(len(flow.forward), dtype=np.float64)
    for t in range(len(flow.forward)):
        warped = warp(flow.frames[t], flow.backward[t])
        mask = occlusion_mask(flow.forward[t], flow.backward[t])
        err = np.mean((flow.frames[t + 1] - warped) ** 2, axis=-1)  # (h, w)
        errors[t] = float(err[mask].mean()) if mask.any() else float(err.mean())
    return errors


def flow_score(flow: FlowField) -> float:
    """OFS: mean flow magnitude over every pixel and pair, in the video's pixels per frame."""
    return float(flow.magnitude().mean())


def mawe(flow: FlowField, c: float = 1.0, ofs_floor: float = OFS_FLOOR) -> float:
    """Motion-aware warp error W / (c * max(OFS, floor)); lower is better."""
    return mawe_of(float(warp_errors(flow).mean()), flow_score(flow), c, ofs_floor)


def mawe_of(warp_error: float, ofs: float, c: float = 1.0, ofs_floor: float = OFS_FLOOR) -> float:
    """MAWE from its two parts, the mean warp error W and the optical-flow score OFS."""
    return float(warp_error / (c * max(ofs, ofs_floor)))


def motion_scores(frames: np.ndarray, fps: float = 16.0, method: str = "dis", min_side: int = 128) -> np.ndarray:
    """VBench's per-pair motion score: the mean of the largest 5% flow magnitudes, on frames taken at ~8 fps."""
    step = max(1, round(fps / 8.0))
    sampled = frames[::step]
    if len(sampled) < 2:
        return np.zeros(0)
    mag = optical_flow(sampled, method=method, min_side=min_side, backward=False).magnitude()  # (P, h, w)
    flat = np.sort(mag.reshape(len(mag), -1), axis=1)[:, ::-1]
    top = max(1, int(flat.shape[1] * 0.05))
    return flat[:, :top].mean(axis=1)


def dynamic_degree(frames: np.ndarray, fps: float = 16.0, method: str = "dis", min_side: int = 128) -> float:
    """VBench's dynamic degree of one video: 1.0 if it moves, else 0.0 (a set's degree is the mean).

    A pair moves when its motion score exceeds 6 * min(H, W) / 256 pixels; the video moves when at least
    round(4 * n / 16) of its n sampled frames do (VBench's thresholds, scaled to the video's size).
    """
    return moves(motion_scores(frames, fps, method, min_side), min(frames.shape[1:3]))


def moves(scores: np.ndarray, short_side: int) -> float:
    """Dynamic degree from the motion scores of a video whose frames have this short side."""
    threshold = 6.0 * short_side / 256.0
    needed = max(1, round(4 * (len(scores) + 1) / 16.0))
    return float(int(np.sum(scores > threshold) >= needed))


def frame_differences(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference of consecutive frames, in 0..255 units: (T-1,)."""
    f = frames.astype(np.float32)
    return np.abs(f[1:] - f[:-1]).mean(axis=(1, 2, 3))


def temporal_flickering(frames: np.ndarray) -> float:
    """VBench's temporal flickering score (255 - mean |frame_t+1 - frame_t|) / 255: 1.0 for a still video."""
    return float((255.0 - frame_differences(frames).mean()) / 255.0)
