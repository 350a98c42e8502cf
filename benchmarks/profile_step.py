"""Where one denoising step's time goes (issue 24): the parts of a `vin` step, and the operators of `vin` and `full`.

Parts (wall time, median of `--repeats`, each part run alone on the same noisy video as the sampler gives it):
the VIN read (`read_interface`), the chunk windows through the DiT (`denoise_chunks`: window building, the
blocks, decoding), the assembly with fusion (`assemble`), and the scheduler step over the whole video.
Operators: `torch.profiler` over whole steps (`run_strategy` with one step), self CPU time grouped into matrix
products, attention, copies and indexing (cat, copy, index, contiguous, ...), and the rest (elementwise, norms).

    python benchmarks/profile_step.py --frames 512 --threads 2 --json benchmarks/results/profile_512.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import vin
from vin.checkpoint import checkpoint_path
from vin.generation import GenerationOptions, run_strategy
from vin.generation.strategies import plan, vin_tokens
from vin.model.windows import assemble

GROUPS = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul", "aten::baddbmm"),
    "attention": ("scaled_dot_product", "flash_attention", "efficient_attention", "_safe_softmax", "aten::_softmax"),
    "copies and indexing": ("aten::cat", "aten::copy_", "aten::clone", "aten::contiguous", "aten::index", "aten::stack",
                            "aten::repeat", "aten::expand", "aten::_unsafe_view", "aten::reshape", "aten::slice",
                            "aten::index_add", "aten::index_put", "aten::flip", "aten::narrow", "aten::pad",
                            "aten::constant_pad_nd", "aten::zeros", "aten::empty", "aten::fill_", "aten::zero_"),
    "convolution": ("aten::convolution", "aten::_convolution", "mkldnn_convolution", "aten::conv3d"),
}


def group_of(name: str) -> str:
    for group, keys in GROUPS.items():
        if any(key in name for key in keys):
            return group
    return "elementwise, norms and the rest"


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


@torch.no_grad()
def parts(model, frames: int, repeats: int) -> dict[str, float]:
    o = GenerationOptions(frames=frames, steps=1, progress=False)
    p = plan(model, "vin", o)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, frames, *p.size, generator=g)
    t = torch.tensor([900.0])
    z = vin_tokens(model, p, "global", x, t, None)
    windows = model.denoise_chunks(x, t, None, z, p.chunk_frames, p.context_frames)
    scheduler = model.make_scheduler(p.scheduler, p.clip)
    scheduler.set_timesteps(25)
    pred = assemble(windows, p.context_frames, fuse=True)

    def step():
        scheduler._step_index = None  # the first step again, every time
        scheduler.step(pred, scheduler.timesteps[0], x)

    return {
        "VIN read": timed(lambda: vin_tokens(model, p, "global", x, t, None), repeats),
        "chunk windows through the DiT": timed(lambda: model.denoise_chunks(x, t, None, z, p.chunk_frames, p.context_frames), repeats),
        "assembly with fusion": timed(lambda: assemble(windows, p.context_frames, fuse=True), repeats),
        "scheduler step": timed(step, repeats),
        "whole step (run_strategy)": timed(lambda: run_strategy(model, "vin", o), repeats),
    }


def operators(model, strategy: str, frames: int, full_model=None) -> dict[str, float]:
    m = full_model if strategy == "full" and full_model is not None else model
    o = GenerationOptions(frames=frames, steps=1, progress=False)
    run_strategy(m, strategy, o)  # warm-up
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run_strategy(m, strategy, o)
    shares: dict[str, float] = {}
    for event in prof.key_averages():
        shares[group_of(event.key)] = shares.get(group_of(event.key), 0.0) + event.self_cpu_time_total / 1000
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = vin.load_model(checkpoint_path("default"))
    full = vin.load_model(checkpoint_path("full"))
    out = {"frames": args.frames, "threads": args.threads, "vin_parts_ms": parts(model, args.frames, args.repeats),
           "operators_ms": {s: operators(model, s, args.frames, full) for s in ("vin", "full")}}  # fmt: skip
    with open(args.json, "w") as fh:
        json.dump(out, fh, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
