"""A measured and retired idea for continuations (issue 23): start the made frames from the given ones (SDEdit).

Instead of pure noise at sigma 1, the made frames start at a lower level sigma_s = sigmas[--skip] from the given
frames' content, noised: `median` (the given frames' per-pixel median: their background, static) or `tile` (the
given frames repeated); the first `--skip` steps are skipped. Everything else is the library's continuation
(replacement and reconstruction guidance). The sampler is patched here, not in the library: the idea measured
short of the issue's bar (`benchmarks/results.md`, "Starting the made frames from the given ones"), so it is not an
option. Arguments after ours are `benchmarks/continuation.py`'s.

    python benchmarks/continuation_start.py --skip 2 --content median -- --frames 128 --given 16 --seeds 3 \
        --strategies vin --noise independent --json /tmp/start_2_median.json
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import torch

from vin.diffusion import sampling


def patched_run(skip: int, content: str):
    """Sampler.run whose chains start at sigmas[skip] from the given frames' content (chains without given frames:
    unchanged)."""
    original = sampling.Sampler.run

    def run(self, noise, predict, generator=None, desc="sampling", start=0):
        known = self.known
        if known is None or skip == 0:
            return original(self, noise, predict, generator, desc, start)
        scheduler = self.scheduler
        scheduler.set_timesteps(self.steps)
        frames, g = noise.shape[2], known.frames  # g: (B, C, G, H, W)
        if content == "median":
            base = g.median(dim=2, keepdim=True).values.expand(-1, -1, frames, -1, -1)
        else:
            base = g.repeat(1, 1, -(-frames // g.shape[2]), 1, 1)[:, :, :frames]
        sigma = float(scheduler.sigmas[skip])
        x = (1 - sigma) * base.to(noise.dtype) + sigma * noise  # the flow objective's x_t at sigma
        scheduler._step_index = skip
        for i in range(skip, len(scheduler.timesteps)):
            t = scheduler.timesteps[i]
            time = torch.full((x.shape[0],), float(t))
            x = known.impose(x, self.level(i, time), start)
            guided = known.guidance > 0 and start < known.count
            pred = self.reconstruction_guided(predict, x, time, i, start) if guided else predict(x, time, i)
            x = scheduler.step(pred.float(), t, x).prev_sample
        x = known.impose(x, None, start)
        return x.clamp(-1, 1) if self.clip else x

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", type=int, default=2, help="steps skipped: the chain starts at sigmas[skip]")
    ap.add_argument("--content", choices=("median", "tile"), default="median")
    args, rest = ap.parse_known_args()
    sampling.Sampler.run = patched_run(args.skip, args.content)
    sys.argv = ["continuation.py"] + [a for a in rest if a != "--"]
    runpy.run_path(str(Path(__file__).with_name("continuation.py")), run_name="__main__")


if __name__ == "__main__":
    main()
