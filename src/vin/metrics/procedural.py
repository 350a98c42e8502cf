"""Ground-truth checks for videos of the procedural domain (`vin.data.synthetic`).

A procedural video has a background that never changes and sprites that keep their colour and move at
constant velocity, bouncing off the edges. A generated video of that domain has no per-video ground truth,
but it must obey those laws, so each law becomes a number (all in the video's pixels, 0..255 units):

- background drift: the video is cut into segments (chunks); each segment's background is its per-pixel
  temporal median (moving sprites mostly drop out; sprites are found against the median of a longer
  window of 48 frames around the segment, since slow sprites linger within one chunk); drift is the median over pixels of |segment background -
  first segment's background|, averaged over later segments. Real procedural videos: ~0.
- sprite colour changes: sprites are painted in the colours of a fixed palette; a segment's sprite colours
  are the palette colours that cover at least 10 foreground pixels per frame (per 32x32). The figure is
  the number of colours that appear or vanish against the first segment (present in one, under a third
  as much in the other), averaged over the later segments. A sprite that changes colour counts 2; real procedural videos: ~0; a new scene every chunk:
  about twice the number of sprites.
- sprite count change: mean |sprites per frame in a segment - in the first segment| (medians).
- trajectory acceleration: sprites are tracked frame to frame (nearest centroid of the same colour);
  mean |second difference of the centroid| in pixels/frame^2, away from the edges (where sprites
  bounce or leave the frame). Constant velocity gives ~0; a seam that moves a sprite gives a spike.
- track breaks: the fraction of sprites (away from the edges) with no plausible predecessor in the
  previous frame: sprites that appear, teleport or change colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vin.data.synthetic import PALETTE

FOREGROUND = 40.0  # |frame - background| (max over channels) above which a pixel belongs to a sprite
NEW_COLOR = 60.0  # RGB distance beyond which a colour counts as another sprite's
PALETTE_MATCH = 50.0  # RGB distance within which a foreground pixel takes a palette colour
PALETTE_PRESENT = 10.0  # pixels per frame (per 32x32) for a palette colour to count as a sprite's
MAX_STEP = 3.0  # pixels a sprite may move between frames and still be the same sprite (32x32 frames)
MASK_WINDOW = 48  # frames whose median is the background that sprites are segmented against


@dataclass
class Blob:
    centroid: np.ndarray  # (2,) y, x
    color: np.ndarray  # (3,) RGB
    area: int
    at_edge: bool


def segments(frames: int, chunk_frames: int) -> list[slice]:
    """Chunks of `chunk_frames`; at least two segments (halves) when the video is one chunk or shorter."""
    size = max(1, min(chunk_frames, frames // 2))
    return [slice(s, min(s + size, frames)) for s in range(0, frames - size + 1, size)]


def blobs(frame: np.ndarray, background: np.ndarray, min_area: int) -> list[Blob]:
    """Sprites in one frame: connected regions that differ from the background."""
    diff = np.abs(frame.astype(np.float32) - background).max(axis=-1)
    mask = (diff > FOREGROUND).astype(np.uint8)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    h, w = mask.shape
    out = []
    for i in range(1, count):
        x, y, bw, bh, area = stats[i]
        if area < min_area:
            continue
        pixels = labels == i
        weights = diff[pixels]
        color = (frame[pixels].astype(np.float32) * weights[:, None]).sum(0) / weights.sum()  # strong pixels count more
        at_edge = x <= 0 or y <= 0 or x + bw >= w or y + bh >= h
        out.append(Blob(np.array([centroids[i][1], centroids[i][0]]), color, int(area), bool(at_edge)))
    return out


def palette_coverage(frames: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Foreground pixels per frame (per 32x32) near each palette colour, for frames (T, H, W, 3): (colours,)."""
    f = frames.astype(np.float32)
    fg = f[np.abs(f - background).max(axis=-1) > FOREGROUND]  # (P, 3)
    scale = 1024 / (frames.shape[1] * frames.shape[2]) / len(frames)
    if not len(fg):
        return np.zeros(len(PALETTE))
    dist = np.linalg.norm(fg[:, None] - PALETTE[None], axis=-1)  # (P, colours)
    near = dist.argmin(axis=1)[dist.min(axis=1) < PALETTE_MATCH]
    return np.bincount(near, minlength=len(PALETTE)) * scale


def color_changes(a: np.ndarray, b: np.ndarray) -> int:
    """Palette colours clearly present in one coverage and nearly absent (< a third as much) in the other."""
    high, low = np.maximum(a, b), np.minimum(a, b)
    return int(np.sum((high >= PALETTE_PRESENT) & (low < PALETTE_PRESENT / 3)))


def procedural_checks(frames: np.ndarray, chunk_frames: int) -> dict[str, float]:
    """The ground-truth figures above for frames (T, H, W, 3) uint8."""
    t, h, w = frames.shape[:3]
    min_area = max(4, round(12 * h * w / 1024))
    max_step = MAX_STEP * max(h, w) / 32
    segs = segments(t, chunk_frames)
    backgrounds = [np.median(frames[s].astype(np.float32), axis=0) for s in segs]  # (H, W, 3) each
    drift = [float(np.median(np.abs(b - backgrounds[0]).mean(axis=-1))) for b in backgrounds[1:]]

    mask_backgrounds = []
    for s in segs:
        lo = max(0, min((s.start + s.stop - MASK_WINDOW) // 2, t - MASK_WINDOW))
        mask_backgrounds.append(np.median(frames[lo : lo + MASK_WINDOW].astype(np.float32), axis=0))
    per_frame: list[list[Blob]] = []
    for s, background in zip(segs, mask_backgrounds):
        per_frame += [blobs(frames[i], background, min_area) for i in range(s.start, s.stop)]
    coverage = [palette_coverage(frames[seg], mask_backgrounds[i]) for i, seg in enumerate(segs)]
    changes = [color_changes(c, coverage[0]) for c in coverage[1:]]

    counts = [float(np.median([len(per_frame[i]) for i in range(s.start - segs[0].start, s.stop - segs[0].start)])) for s in segs]
    count_change = float(np.mean([abs(c - counts[0]) for c in counts[1:]])) if len(counts) > 1 else 0.0

    accelerations, breaks, tracked = [], 0, 0
    previous: dict[int, np.ndarray] = {}  # blob index in the previous frame -> its velocity, if known
    for i in range(1, len(per_frame)):
        current: dict[int, np.ndarray] = {}
        for j, b in enumerate(per_frame[i]):
            match = _predecessor(b, per_frame[i - 1], max_step)
            if b.at_edge:
                continue
            tracked += 1
            if match is None:
                breaks += 1
                continue
            velocity = b.centroid - per_frame[i - 1][match].centroid
            current[j] = velocity
            if match in previous and not per_frame[i - 1][match].at_edge:
                accelerations.append(float(np.linalg.norm(velocity - previous[match])))
        previous = current
    return {
        "background_drift": float(np.mean(drift)) if drift else 0.0,
        "sprite_color_changes": float(np.mean(changes)) if changes else 0.0,
        "sprite_count_change": count_change,
        "trajectory_acceleration": float(np.mean(accelerations)) if accelerations else 0.0,
        "track_breaks": breaks / tracked if tracked else 0.0,
    }


def _predecessor(blob: Blob, candidates: list[Blob], max_step: float) -> int | None:
    """Index of the nearest blob of a similar colour within `max_step` pixels, or None."""
    best, best_d = None, max_step
    for k, c in enumerate(candidates):
        d = float(np.linalg.norm(blob.centroid - c.centroid))
        if d <= best_d and np.linalg.norm(blob.color - c.color) <= NEW_COLOR:
            best, best_d = k, d
    return best

