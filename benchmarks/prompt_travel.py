"""Prompt travel on the class-conditional checkpoint (issue 23): does each chunk show its own label's digit?

The labelled model is conditioned on the first sprite's digit (`configs/small_cond.yaml`). A video of N chunks
is sampled with one label per chunk (the first half of the chunks one digit, the rest another, drawn per
seed), and a digit reader reads every chunk: a small CNN fit here on frames of training-seed procedural videos
(their digits are scikit-learn's `digits`, painted as the data paints them) against their first sprite's digit,
from each frame's foreground map (|frame - the median of the 48 frames around its chunk|). A chunk's digit is
the class with the most probability summed over its frames. The same reader on held-out procedural videos
(true labels) gives its ceiling: a second sprite that is a digit too (30% of videos) can take the vote.
Reported: the fraction of chunks whose digit is their label, and the background drift of the travel video
against the same seed with the first label everywhere (the issue's bar: within 1.5x).

    python benchmarks/prompt_travel.py --checkpoint runs/small_cond --frames 128 --seeds 8 --json out.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import vin
from vin.checkpoint import checkpoint_path
from vin.data.synthetic import SyntheticVideos
from vin.metrics.procedural import MASK_WINDOW, procedural_checks, segments
from vin.metrics.suite import training_data_config

HELD_OUT = 200


class Reader(torch.nn.Module):
    """Which digit a frame's sprites show, from its foreground map (|frame - background|, max over RGB, /255)."""

    def __init__(self) -> None:
        super().__init__()
        conv = lambda i, o, s: torch.nn.Sequential(torch.nn.Conv2d(i, o, 3, s, 1), torch.nn.GELU())  # noqa: E731
        self.net = torch.nn.Sequential(conv(1, 32, 1), conv(32, 64, 2), conv(64, 64, 1), conv(64, 128, 2),
                                       torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(), torch.nn.Linear(128, 10))  # fmt: skip

    def forward(self, fg: torch.Tensor) -> torch.Tensor:  # (B, H, W) -> (B, 10) logits
        return self.net(fg[:, None])


def foreground(frames: np.ndarray, background: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.abs(frames.astype(np.float32) - background).max(axis=-1) / 255.0)


def fit_reader(data: SyntheticVideos, videos: int = 3000, steps: int = 800) -> Reader:
    """The reader, fit on frames of training-seed procedural videos (the digits are scikit-learn's, as the data
    paints them) against their first sprite's digit; the background is a 48-frame median, as at evaluation."""
    torch.manual_seed(0)
    fgs, labels = [], []
    for seed in range(2**20, 2**20 + videos):
        v = data.video(seed, MASK_WINDOW)
        background = np.median(v.frames.astype(np.float32), axis=0)
        fgs.append(foreground(v.frames[::12], background))
        labels += [v.label] * len(fgs[-1])
    x, y = torch.cat(fgs), torch.tensor(labels)
    reader = Reader()
    opt = torch.optim.AdamW(reader.parameters(), 2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,), generator=g)
        loss = torch.nn.functional.cross_entropy(reader(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return reader.eval()


@torch.no_grad()
def chunk_digit(frames: np.ndarray, reader: Reader, background: np.ndarray) -> int:
    """The digit a chunk (T, H, W, 3) uint8 shows: the reader's probabilities summed over its frames."""
    return int(reader(foreground(frames, background)).softmax(-1).sum(0).argmax())


def score(frames: np.ndarray, labels: list[int], chunk: int, reader: Reader) -> float:
    """The fraction of chunks whose digit is their label; each chunk's background is the median of the 48 frames
    around it (slow sprites linger within one chunk), as `vin.metrics.procedural` segments sprites."""
    t, hits = len(frames), []
    for s, y in zip(segments(t, chunk), labels):
        lo = max(0, min((s.start + s.stop - MASK_WINDOW) // 2, t - MASK_WINDOW))
        background = np.median(frames[lo : lo + MASK_WINDOW].astype(np.float32), axis=0)
        hits.append(chunk_digit(frames[s], reader, background) == y)
    return float(np.mean(hits))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--strategy", default="vin")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = checkpoint_path(args.checkpoint)
    model = vin.load_model(path)
    config = training_data_config(path)
    data, f = SyntheticVideos(config), model.config.chunk_frames
    reader = fit_reader(data)
    chunks = args.frames // f
    rows = []
    for seed in range(args.seeds):
        truth = data.video(HELD_OUT + seed, args.frames)
        ceiling = score(truth.frames, [truth.label] * chunks, f, reader)
        rng = np.random.default_rng(seed)
        a, b = (int(d) for d in rng.choice(10, 2, replace=False))
        labels = [a] * (chunks // 2) + [b] * (chunks - chunks // 2)
        kw = dict(strategy=args.strategy, guidance=args.guidance)
        travel = vin.generate(model, args.frames, args.steps, seed, label=tuple(labels), **kw).video.numpy()
        single = vin.generate(model, args.frames, args.steps, seed, label=a, **kw).video.numpy()
        row = {"seed": seed, "labels": labels, "data_ceiling": ceiling, "travel_follows": score(travel, labels, f, reader),
               "single_follows": score(single, [a] * chunks, f, reader),
               "travel_drift": procedural_checks(travel, f)["background_drift"],
               "single_drift": procedural_checks(single, f)["background_drift"]}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("seed", "labels")}
    with open(args.json, "w") as fh:
        json.dump({"args": vars(args), "summary": summary, "rows": rows}, fh, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
