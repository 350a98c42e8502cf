"""What a run shows while it trains: a loss-curve PNG and sample videos from the EMA model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .files import atomic_path
from .videos import write_video


def read_log(path: Path) -> list[dict]:
    """The rows of a log.jsonl (lines that do not parse, e.g. a half-written last line, are ignored)."""
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def plot_loss(log_path: Path, png_path: Path) -> Path | None:
    """Plots loss (each logged step) and its 50-step average against the step; written atomically."""
    rows = [r for r in read_log(log_path) if isinstance(r.get("loss"), (int, float))]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot()
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["loss"] for r in rows], lw=0.8, alpha=0.5, label="loss")
    ax.plot(steps, [r["loss_avg50"] for r in rows], lw=1.6, label="50-step average")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if min(r["loss"] for r in rows) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    return png_path


@torch.no_grad()
def write_sample(model, path: Path, frames: int, steps: int, seed: int = 0, fps: int = 8) -> Path:
    """A video of `frames` frames from `model` with the vin strategy (full for a full-attention model), written to `path` (.mp4).

    A model trained in latent space (with `model.latent_decoder`) is decoded to pixels.
    Runs on its own seeded generator and restores torch's RNG, so training continues unchanged.
    """
    from .generation.api import generate

    with torch.random.fork_rng(devices=[]):
        label = 0 if model.config.num_classes > 0 else None
        strategy = "full" if model.config.full_frames > 0 else "vin"  # a full-attention model has no chunks
        video = generate(model, frames, steps, seed, strategy, label=label).video.numpy()  # (T, H, W, 3)
    upscale = max(1, 128 // video.shape[1])
    return write_video(np.ascontiguousarray(video), path, fps=fps, upscale=upscale)
