"""One seed, several strategies, one GIF: the videos side by side, each under its strategy's name.

    python benchmarks/side_by_side.py --frames 512 --strategies vin,independent,autoregressive --out side.gif

A continuation (`--init-seed S --init-frames G`): every strategy continues the first G frames of the held-out
procedural video S, shown first as `data` (the given frames, then the video as it really goes on); a
strategy `NAME:replace` continues by replacement alone (`init_guidance=0`). A condition per chunk:
`--label 1,1,7,7` (a class-conditional checkpoint).

Chunk boundaries are marked by a red tick on each video's top edge, so a seam can be told from motion.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vin import generate, load_model
from vin.checkpoint import checkpoint_path
from vin.videos import write_video


def label(text: str, width: int, height: int = 12) -> np.ndarray:
    """A (height, width, 3) white strip with black text."""
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).text((2, 0), text, fill="black")
    return np.asarray(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder [default: the shipped model]")
    parser.add_argument("--full-checkpoint", default=None, help="a full-attention model for the full column ('full': shipped)")
    parser.add_argument("--strategies", default="vin,independent,autoregressive")
    parser.add_argument("--frames", type=int, default=512)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--upscale", type=int, default=3)
    parser.add_argument("--fps", type=int, default=16)
    parser.add_argument("--init-seed", type=int, default=None, help="continue this held-out procedural video")
    parser.add_argument("--init-frames", type=int, default=16)
    parser.add_argument("--label", default=None, help="a class label, or one per chunk: 1,1,7,7")
    parser.add_argument("--guidance", type=float, default=1.0)
    parser.add_argument("--out", type=Path, required=True, help=".gif or .mp4")
    args = parser.parse_args()

    model = load_model(checkpoint_path(args.checkpoint))
    full = load_model(checkpoint_path(args.full_checkpoint)) if args.full_checkpoint else model
    chunk = model.config.chunk_frames
    columns, kw = [], {"guidance": args.guidance}
    if args.label is not None:
        labels = tuple(int(v) for v in args.label.split(","))
        kw["label"] = labels if len(labels) > 1 else labels[0]
    given = None
    if args.init_seed is not None:
        from vin.data.synthetic import SyntheticVideos
        from vin.metrics.suite import training_data_config

        given = SyntheticVideos(training_data_config(checkpoint_path(args.checkpoint))).video(args.init_seed, args.frames).frames
    for strategy in (["data"] if given is not None else []) + args.strategies.split(","):
        m = full if strategy == "full" else model
        name, _, how = strategy.partition(":")
        if strategy == "data":
            video = given
        elif given is not None:
            video = generate(m, args.frames, args.steps, args.seed, name, init_video=given, init_frames=args.init_frames,
                             init_guidance=0.0 if how == "replace" else 1.0, **kw).video.numpy()  # fmt: skip
        else:
            video = generate(m, args.frames, args.steps, args.seed, strategy, **kw).video.numpy()  # (T, H, W, 3)
        video = video.repeat(args.upscale, axis=1).repeat(args.upscale, axis=2)
        t, h, w, _ = video.shape
        strip = np.repeat(label(strategy, w)[None], t, axis=0)
        tick = np.zeros((t, 3, w, 3), np.uint8) + 255
        tick[np.arange(t) % chunk == 0] = [220, 30, 30]  # red on the first frame of every chunk
        if given is not None:
            tick[: args.init_frames] = [30, 30, 220]  # blue while the frames are the given ones
        columns.append(np.concatenate([strip, tick, video], axis=1))
        columns.append(np.full((t, columns[-1].shape[1], 4, 3), 255, np.uint8))  # a white gap
        print(f"{strategy}: done")
    write_video(np.concatenate(columns[:-1], axis=2), args.out, fps=args.fps)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
