"""Wall time and model calls of every generation strategy for one video, side by side in one run.

    python benchmarks/strategies.py --frames 256 --steps 25 --json benchmarks/strategies_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

import vin
from vin.generation import STRATEGIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    model = vin.load_model(args.checkpoint, args.device)
    vin.generate(model, frames=model.config.chunk_frames, steps=1)  # warm-up
    rows = []
    for strategy in args.strategies.split(","):
        g = vin.generate(model, frames=args.frames, steps=args.steps, seed=args.seed, strategy=strategy)
        rows.append({"strategy": strategy, "frames": args.frames, "steps": args.steps, "seconds": round(g.seconds, 2),
                     "model_calls": g.model_calls, "window_calls": g.window_calls})  # fmt: skip
        print(f"{strategy:15s} {g.seconds:7.2f} s  {g.model_calls:4d} model calls  {g.window_calls:5d} windows", flush=True)
    meta = {"device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.machine(), "checkpoint": str(args.checkpoint or vin.default_checkpoint())}  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
