"""The shipped models' videos for fixed requests, stored once (tests/data/reference_videos.npz) so that a
refactor of the sampling code can show that it changes nothing. Regenerate (only when a change of the
output is intended, and say so in the commit): python -m tests.reference_cases
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

STORE = Path(__file__).parent / "data" / "reference_videos.npz"
# name: (checkpoint, strategy, generation options); 32 frames = 2 chunks of the default model, 3 steps, seed 11
CASES = {
    "vin": ("default", "vin", {}),  # fusion at every step, shuffled noise (since 2026-12-02), 8 context frames (2026-12-03)
    "vin_independent_noise": ("default", "vin", {"noise": "independent"}),  # a noise draw per frame
    "vin_fusion_early": ("default", "vin", {"fusion_fraction": 0.4}),  # the paper's first 20 of 50 steps
    "vin_chunk_tokens": ("default", "vin", {"global_tokens": "chunk", "context_frames": 2}),
    "autoregressive": ("default", "autoregressive", {}),
    "independent": ("default", "independent", {}),
    "overlap": ("default", "overlap", {}),
    "freenoise": ("default", "freenoise", {}),
    "spectral": ("default", "spectral", {}),
    "fifo": ("default", "fifo", {"queue": 2}),
    "full": ("full", "full", {}),
}
FRAMES, STEPS, SEED = 32, 3, 11


def make(name: str) -> np.ndarray:
    """The (T, H, W, 3) uint8 video of one case, from the code as it is now."""
    import vin

    checkpoint, strategy, options = CASES[name]
    model = vin.load_model(vin.default_checkpoint(checkpoint))
    return vin.generate(model, FRAMES, STEPS, SEED, strategy, **options).video.numpy()


def digest(video: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(video).tobytes()).hexdigest()[:16]


if __name__ == "__main__":
    videos = {name: make(name) for name in CASES}
    STORE.parent.mkdir(exist_ok=True)
    np.savez_compressed(STORE, **videos)
    for name, video in videos.items():
        print(name, digest(video))
