"""Continuing held-out procedural videos (issue 23): how well each strategy keeps a given start.

For each held-out video (seeds below 2**20 are never trained on) the first G frames are given and the rest of
a `--frames`-long video is generated with `vin.generate(..., init_video=, init_frames=G)`. Measured, per video:
- `given_drift`: how far each generated chunk's background (its median frame) is from the given video's true
  background, median over pixels of the mean absolute difference in 0..255 (0: the given scene kept);
- `own_drift`: `vin eval`'s background drift of the same video (each chunk against chunk 0);
- `color_changes`: sprite colours present in one chunk and gone in another, against chunk 0, per chunk;
- `junction_seam`: the frame change from the last given frame to the first generated one, over the mean change
  inside chunks (data: about 1);
and, for reference, `vin` without a given video (`free`): its own drift is the bar the issue sets.
The library keeps the given frames by replacement at every step's noise level plus reconstruction guidance
(`--init-guidance`, default 1); `NAME:replace` runs a strategy with replacement alone (`init_guidance=0`).
`vin:clean` is the other way to give frames (`init_mode="clean"`): wholly given chunks at time 0 (clean, a time per
chunk, as `train.init_prob` trains) instead of replaced at each step's level, with reconstruction guidance for a
partly given chunk; `vin:clean:replace` without it. It needs a whole chunk, so it runs with G >= F.

    python benchmarks/continuation.py --frames 256 --seeds 8 --steps 10 --json benchmarks/results/continuation_256.json
(results/continuation_256_replace.json: the same run before reconstruction guidance, every strategy replacing)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import vin
from vin.checkpoint import checkpoint_path
from vin.data.synthetic import SyntheticVideos
from vin.metrics.motion import frame_differences
from vin.metrics.procedural import procedural_checks, segments
from vin.diffusion.objective import Objective
from vin.metrics.suite import training_data_config
from vin.model.windows import assemble

HELD_OUT = 100  # the first held-out video seed


def measure(frames: np.ndarray, background: np.ndarray, given: int, chunk: int) -> dict:
    checks = procedural_checks(frames, chunk)
    segs = [s for s in segments(len(frames), chunk) if s.start >= given]  # chunks wholly generated
    drift = [float(np.median(np.abs(np.median(frames[s].astype(np.float32), 0) - background).mean(-1))) for s in segs]
    diffs = frame_differences(frames)
    inside = np.ones(len(diffs), bool)
    inside[chunk - 1 :: chunk] = False
    seam = float(diffs[given - 1] / diffs[inside].mean()) if given > 0 else None
    return {"given_drift": float(np.mean(drift)), "own_drift": checks["background_drift"],
            "color_changes": checks["sprite_color_changes"], "junction_seam": seam}  # fmt: skip


def x0_error(model, data, sigmas=(0.95, 0.8, 0.5, 0.2), clips: int = 4) -> dict:
    """How much a clean first chunk helps the model: the clean-estimate error of chunk 1 of 4-chunk held-out clips
    when chunk 0 is at the same noise level (`same`) or given clean at time 0 (`given`), per sigma."""
    f = model.config.chunk_frames
    x0 = torch.stack([torch.as_tensor(data.video(HELD_OUT + s, 4 * f).frames).permute(3, 0, 1, 2).float() / 127.5 - 1
                      for s in range(clips)])  # (B, C, 4F, H, W)  # fmt: skip
    objective = Objective(model.config.objective)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    out = {}
    for sigma in sigmas:
        t = torch.full((clips,), sigma * 1000)
        given = t[:, None].repeat(1, 4)
        given[:, 0] = 0.0
        for name, times in (("same", t), ("given", given)):
            with torch.no_grad():
                xt = objective.add_noise(x0, noise, times)
                est = objective.clean(xt, assemble(model(xt, times, None), model.config.context_frames, fuse=False), times)
            out[f"{name}@{sigma}"] = float((est[:, :, f : 2 * f] - x0[:, :, f : 2 * f]).pow(2).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--given", default="16,1")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--strategies", default="vin,vin:replace,vin:clean,autoregressive,fifo,independent")
    ap.add_argument("--init-guidance", type=float, default=1.0)
    ap.add_argument("--noise", default=None, help="the initial noise of every run: independent | shuffled [each strategy's]")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", required=True)
    ap.add_argument("--x0-error", action="store_true", help="only the clean-estimate error of chunk 1 beside a clean chunk 0")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = checkpoint_path(args.checkpoint)
    model = vin.load_model(path)
    data = SyntheticVideos(training_data_config(path))
    f = model.config.chunk_frames
    if args.x0_error:
        errors = x0_error(model.eval(), data)
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "x0_error": errors}, fh, indent=1)
        print(json.dumps(errors))
        return
    rows = []
    for seed in range(args.seeds):
        truth = data.video(HELD_OUT + seed, args.frames)
        free = vin.generate(model, args.frames, args.steps, seed, noise=args.noise).video.numpy()
        rows.append({"strategy": "vin (nothing given)", "given": 0, "seed": seed, **measure(free, truth.background, 0, f)})
        for given in (int(g) for g in args.given.split(",")):
            for spec in args.strategies.split(","):
                if spec.startswith("vin:clean") and given < f:
                    continue
                start = time.perf_counter()
                weight = 0.0 if spec.endswith(":replace") else args.init_guidance
                mode = "clean" if spec.startswith("vin:clean") else "noised"
                out = vin.generate(model, args.frames, args.steps, seed, strategy=spec.split(":")[0], init_video=truth.frames,
                                   init_frames=given, init_guidance=weight, init_mode=mode, noise=args.noise).video.numpy()  # fmt: skip
                row = {"strategy": spec, "given": given, "seed": seed, **measure(out, truth.background, given, f),
                       "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for row in rows:
        key = f"{row['strategy']} | given {row['given']}"
        summary.setdefault(key, []).append(row)
    table = {k: {m: (float(np.mean([r[m] for r in v])), float(np.std([r[m] for r in v])))
                 for m in ("given_drift", "own_drift", "color_changes") } | {
                 "junction_seam": float(np.mean([r["junction_seam"] for r in v])) if v[0]["junction_seam"] is not None else None}
             for k, v in summary.items()}  # fmt: skip
    with open(args.json, "w") as fh:
        json.dump({"args": vars(args), "summary": table, "rows": rows}, fh, indent=1)
    for k, v in table.items():
        print(k, {m: (round(x[0], 3) if isinstance(x, tuple) else x) for m, x in v.items()})


if __name__ == "__main__":
    main()
