"""One seed as a contact sheet: a frame every EVERY frames, one row per method, chunk starts marked.

    python benchmarks/contact_sheet.py --frames 256 --every 8 --out benchmarks/results/contact_sheet.png

Rows (default): `vin`, `vin` with `global_tokens=chunk` (each chunk's VIN reads only itself), `independent`,
and `data` (the real procedural video of the same seed). A red bar above a frame marks the first frame of
a chunk, so a change of scene at a seam is told from motion inside a chunk.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vin import generate, load_model
from vin.data.synthetic import SyntheticConfig, SyntheticVideos
from vin.checkpoint import checkpoint_path
from vin.files import atomic_path
from vin.metrics.suite import training_data_config

ROWS = {"vin": ("vin", {}), "chunk tokens": ("vin", {"global_tokens": "chunk"}), "independent": ("independent", {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder [default: the shipped model]")
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--every", type=int, default=8)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--upscale", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help=".png")
    args = parser.parse_args()
    path = checkpoint_path(args.checkpoint)
    model = load_model(path)
    size, chunk = model.config.sample_size, model.config.chunk_frames
    videos = {name: generate(model, args.frames, args.steps, args.seed, strategy, **options).video.numpy()
              for name, (strategy, options) in ROWS.items()}  # fmt: skip
    data = SyntheticVideos(replace(training_data_config(path) or SyntheticConfig(), height=size, width=size))
    videos["data"] = data.video(args.seed, args.frames).frames
    picks = np.arange(0, args.frames, args.every)
    u, gap, label_w, bar = args.upscale, 2, 84, 3
    cell = size * u
    sheet = Image.new("RGB", (label_w + len(picks) * (cell + gap), len(videos) * (cell + bar + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, video) in enumerate(videos.items()):
        y = r * (cell + bar + gap)
        draw.text((2, y + cell // 2), name, fill="black")
        for c, frame in enumerate(picks):
            x = label_w + c * (cell + gap)
            if frame % chunk == 0:
                draw.rectangle([x, y, x + cell - 1, y + bar - 1], fill=(220, 30, 30))
            sheet.paste(Image.fromarray(video[frame].repeat(u, 0).repeat(u, 1)), (x, y + bar))
    with atomic_path(args.out) as tmp:
        sheet.save(tmp, format="png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
