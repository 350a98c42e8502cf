"""Procedural long videos with known ground truth.

A video is a persistent textured background and a few sprites (shapes, and handwritten digits from
scikit-learn's bundled `digits` set for identity) with fixed colours, moving at constant velocity
and bouncing off the frame's edges. Positions have a closed form (a triangle wave), so any frame
range of any length is rendered directly and the same seed gives the same video. Everything a metric
needs is kept: the background, each sprite's kind, colour and trajectory.

A model that sees only its own chunk must guess the background and the sprites' colours and
identities again for every chunk, so it drifts; a model with global information need not.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..config import SyntheticConfig

__all__ = ["SyntheticConfig", "SyntheticVideos"]

SHAPES = ("circle", "square", "triangle", "diamond")
PALETTE = np.array(
    [
        [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
        [145, 30, 180], [70, 240, 240], [240, 50, 230], [255, 255, 255], [20, 20, 20],
    ],
    dtype=np.float32,
)  # fmt: skip


@lru_cache(maxsize=1)
def _digit_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: nothing is downloaded

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square (s, s) mask to (size, size)."""
    s = img.shape[0]
    coords = (np.arange(size) + 0.5) * s / size - 0.5
    c0 = np.clip(np.floor(coords).astype(int), 0, s - 1)
    c1 = np.clip(c0 + 1, 0, s - 1)
    f = np.clip(coords - np.floor(coords), 0, 1)
    rows = img[c0] * (1 - f)[:, None] + img[c1] * f[:, None]
    return rows[:, c0] * (1 - f)[None] + rows[:, c1] * f[None]


def _shape_mask(kind: str, size: int) -> np.ndarray:
    """Anti-aliased mask (size, size) in [0, 1], by 4x supersampling."""
    n = size * 4
    y, x = (np.mgrid[0:n, 0:n] + 0.5) / n * 2 - 1  # [-1, 1]
    if kind == "circle":
        m = x**2 + y**2 <= 0.9**2
    elif kind == "square":
        m = (np.abs(x) <= 0.8) & (np.abs(y) <= 0.8)
    elif kind == "triangle":
        m = (y <= 0.85) & (y >= -0.85 + 2 * np.abs(x) * 0.95)
    elif kind == "diamond":
        m = np.abs(x) + np.abs(y) <= 0.95
    else:
        raise ValueError(f"unknown sprite kind {kind!r}")
    return m.reshape(size, 4, size, 4).mean(axis=(1, 3)).astype(np.float32)


def _bounce(p0: float, v: float, lo: float, hi: float, t: np.ndarray) -> np.ndarray:
    """Position at times t of a point moving at speed v and reflecting off lo and hi (triangle wave)."""
    span = hi - lo
    if span <= 0:
        return np.full(t.shape, lo, dtype=np.float64)
    u = np.mod(p0 - lo + v * t, 2 * span)
    return lo + np.where(u <= span, u, 2 * span - u)


@dataclass
class Sprite:
    kind: str  # a shape name or "digit"
    digit: int  # the digit's class, -1 for shapes
    color: np.ndarray  # (3,) in [0, 255]
    size: int
    mask: np.ndarray  # (size, size) in [0, 1]
    start: np.ndarray  # (2,) y, x of the top-left corner at frame 0
    velocity: np.ndarray  # (2,) pixels per frame

    def positions(self, t: np.ndarray, height: int, width: int) -> np.ndarray:
        """Top-left corners at frames t: (len(t), 2)."""
        return np.stack(
            [
                _bounce(self.start[0], self.velocity[0], 0, height - self.size, t),
                _bounce(self.start[1], self.velocity[1], 0, width - self.size, t),
            ],
            axis=-1,
        )


@dataclass
class SyntheticVideo:
    """One procedural video's frames and the ground truth that made them."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    background: np.ndarray  # (H, W, 3) float32 in [0, 255]
    sprites: list[Sprite]
    positions: np.ndarray  # (num_sprites, T, 2) top-left corners
    label: int  # the class of the first sprite's digit


class SyntheticVideos:
    """A deterministic family of procedural videos: `video(seed, frames)` is a pure function."""

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config or SyntheticConfig()

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        cells = rng.uniform(30, 225, size=(c.texture_cells, c.texture_cells, 3)).astype(np.float32)
        field = np.stack([_resize(cells[..., i], max(c.height, c.width))[: c.height, : c.width] for i in range(3)], -1)
        yy, xx = np.mgrid[0 : c.height, 0 : c.width]
        angle, period, phase = rng.uniform(0, np.pi), rng.uniform(6, 12), rng.uniform(0, 2 * np.pi)
        stripes = np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period + phase)
        return np.clip(field + c.stripe_amplitude * stripes[..., None], 0, 255).astype(np.float32)

    def _sprites(self, rng: np.random.Generator) -> list[Sprite]:
        c = self.config
        images, targets = _digit_images()
        colors = rng.choice(len(PALETTE), size=c.num_sprites, replace=False)
        sprites = []
        for i in range(c.num_sprites):
            if i == 0 or rng.random() < 0.3:
                idx = int(rng.integers(len(images)))
                kind, digit, mask = "digit", int(targets[idx]), np.clip(_resize(images[idx], c.sprite_size) * 1.3, 0, 1)
            else:
                kind, digit = str(rng.choice(SHAPES)), -1
                mask = _shape_mask(kind, c.sprite_size)
            speed, angle = rng.uniform(c.min_speed, c.max_speed), rng.uniform(0, 2 * np.pi)
            start = rng.uniform(0, [c.height - c.sprite_size, c.width - c.sprite_size])
            velocity = speed * np.array([np.sin(angle), np.cos(angle)])
            sprites.append(Sprite(kind, digit, PALETTE[colors[i]].copy(), c.sprite_size, mask, start, velocity))
        return sprites

    def video(self, seed: int, frames: int, start: int = 0) -> SyntheticVideo:
        """Frames [start, start + frames) of the video with this seed."""
        c = self.config
        rng = np.random.default_rng(seed)
        background = self._background(rng)
        sprites = self._sprites(rng)
        t = np.arange(start, start + frames, dtype=np.float64)
        positions = np.stack([s.positions(t, c.height, c.width) for s in sprites])  # (S, T, 2)
        out = np.repeat(background[None], frames, axis=0)  # (T, H, W, 3)
        for s, pos in zip(sprites, positions):
            for j in range(frames):
                self._paste(out[j], s, pos[j])
        return SyntheticVideo(np.clip(out + 0.5, 0, 255).astype(np.uint8), background, sprites, positions, sprites[0].digit)

    @staticmethod
    def _paste(frame: np.ndarray, sprite: Sprite, pos: np.ndarray) -> None:
        """Alpha-blends a sprite at a sub-pixel position (bilinear shift of its mask)."""
        iy, ix = int(np.floor(pos[0])), int(np.floor(pos[1]))
        fy, fx = pos[0] - iy, pos[1] - ix
        m = np.pad(sprite.mask, 1)
        shifted = (
            (1 - fy) * (1 - fx) * m[1:, 1:] + fy * (1 - fx) * m[:-1, 1:] + (1 - fy) * fx * m[1:, :-1] + fy * fx * m[:-1, :-1]
        )  # (size+1, size+1): mask value at each target pixel
        h, w = frame.shape[:2]
        y1, x1 = min(iy + shifted.shape[0], h), min(ix + shifted.shape[1], w)
        alpha = shifted[: y1 - iy, : x1 - ix, None]
        region = frame[iy:y1, ix:x1]
        frame[iy:y1, ix:x1] = region * (1 - alpha) + sprite.color * alpha

    def clip(self, seed: int, frames: int) -> tuple[torch.Tensor, int]:
        """A training clip: (3, T, H, W) float in [-1, 1], and its label."""
        v = self.video(seed, frames)
        x = torch.from_numpy(v.frames).permute(3, 0, 1, 2).float() / 127.5 - 1.0
        return x, v.label

    def batch(
        self, generator: torch.Generator, batch: int, frames: int, shard: slice = slice(None)
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch` clips from seeds drawn with `generator`: (B, 3, T, H, W), labels (B,).

        Training seeds are drawn from [2**20, 2**31); seeds below 2**20 are held out for evaluation.
        `shard` renders only part of the batch (a rank's share); the seeds drawn are the same.
        """
        seeds = torch.randint(2**20, 2**31 - 1, (batch,), generator=generator).tolist()[shard]
        clips, labels = zip(*(self.clip(s, frames) for s in seeds))
        return torch.stack(clips), torch.tensor(labels)
