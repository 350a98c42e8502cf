"""Chunk-parallel VIN sampling across ranks: each rank denoises only its own chunks.

Per step, rank r
1. receives the last K noisy frames of rank r-1 (its first chunk's context) and sends its own last K
   frames to rank r+1;
2. reads its own keyframes with the VIN's cross-attention and merges the partial reads of all ranks
   with two all-reduces of O(M x D) (exact: log-sum-exp weighting), so every rank holds the same Z_t;
3. runs the DiT on its chunks as one batch;
4. in fused steps, sends its first chunk's context prediction back to rank r-1, which blends it into
   its last chunk's tail, as the single-process sampler does;
5. steps the scheduler on its own frames.
The noise is drawn whole from the seed on every rank and sliced, so the result equals the
single-process result; rank 0 gathers the frames at the end.
"""

from __future__ import annotations

import time

import torch

from ..diffusion.sampling import GuidedModel, Sampler
from ..model.protocol import VideoModel
from ..model.windows import assemble
from ..parallel import Group, allreduce_merge, chunk_ranges, gather_frames, shift
from .strategies import GenerationOptions, Plan, StrategyOutput, fusion_steps, plan, video_noise, vin_tokens, windows_in_groups


@torch.no_grad()
def run_vin_distributed(
    model: VideoModel, options: GenerationOptions, group: Group, labels: torch.Tensor | None = None,
    null_labels: torch.Tensor | None = None, resolved: Plan | None = None,
) -> StrategyOutput:
    """The `vin` strategy over `group.world` ranks (`resolved`: the request's plan, if already made). On rank 0
    `sample` is the whole video; elsewhere None."""
    p = plan(model, "vin", options, labelled=labels is not None) if resolved is None else resolved
    ranges = chunk_ranges(p.chunks, group.world)
    first, end = ranges[group.rank]
    f, k, o = p.chunk_frames, p.context_frames, options
    generator = torch.Generator().manual_seed(o.seed)
    if labels is None and o.label is not None:
        labels = torch.tensor([o.label])
    noise = video_noise(model, p, 1, p.size, generator)  # the same on every rank
    x = noise[:, :, first * f : end * f].contiguous()
    b, c, _, h, w = x.shape
    context_shape = (b, c, k, h, w)
    fused = fusion_steps(o.fusion_schedule, o.fusion_fraction, o.steps)
    merge = allreduce_merge(group) if group.distributed else None
    call = GuidedModel(model, labels.to(model.device) if labels is not None else None, o.guidance,
                       null_labels.to(model.device) if null_labels is not None else None)  # fmt: skip
    exchange = group.distributed and k > 0

    def predict(x_in: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        context = shift(group, x_in[:, :, -k:], +1, context_shape, x_in.dtype) if exchange else None

        def fn(xb, tb, yb):
            reps = xb.shape[0] // b  # guidance doubles the batch
            ctx = context.repeat(reps, 1, 1, 1, 1).to(xb.dtype) if context is not None else None
            z = vin_tokens(model, p, o.global_tokens, xb, tb, yb, first * f, merge)  # the strategy's own read
            return windows_in_groups(model, p, xb, tb, yb, z, None, ctx)

        windows = call(fn, x_in, t, end - first)  # (B, n_r, C, K+F, H, W)
        fuse = step in fused
        after = shift(group, windows[:, 0, :, :k], -1, context_shape, windows.dtype) if fuse and exchange else None
        return assemble(windows, k, fuse, after)

    start = time.perf_counter()
    sampler = Sampler(model.make_scheduler(p.scheduler, p.clip), o.steps, p.clip, o.progress and group.rank == 0)
    part = sampler.run(x, predict, generator, "vin")
    sample = gather_frames(group, part, ranges, f)
    seconds = time.perf_counter() - start
    windows = torch.tensor([call.window_calls])
    if group.distributed:
        torch.distributed.all_reduce(windows)  # the windows of all ranks
    return StrategyOutput(sample, "vin", call.model_calls, int(windows), seconds)

