"""The denoising loop shared by every generation strategy, and classifier-free guidance.

A strategy supplies `predict(x_t, t, step_index) -> prediction` for the whole video (B, C, T, H, W);
the loop asks diffusers' scheduler to step the whole video at once. `on_each_step` lets a caller (the demo)
stop a request at its next step: every strategy's model calls go through `GuidedModel`, which calls the hook.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..model.protocol import VideoModel
from .objective import make_scheduler

Predict = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
_STEP_HOOK: ContextVar[Callable[[], None] | None] = ContextVar("vin_step_hook", default=None)


@contextmanager
def on_each_step(hook: Callable[[], None]) -> Iterator[None]:
    """Calls `hook()` before every model call (one per denoising step and chunk in flight) of the sampling done
    inside the block, in this thread only. A hook that raises stops the sampling there: how the demo ends a
    cancelled request at its next step instead of after its last. Without the block nothing is called."""
    token = _STEP_HOOK.set(hook)
    try:
        yield
    finally:
        _STEP_HOOK.reset(token)


class Sampler:
    """The denoising loop of one request: its scheduler built once, then `run` for each sampling chain.

    `scheduler`: a diffusers scheduler (the model's: `model.make_scheduler`); `clip`: pixel space, where samples
    live in [-1, 1]: the result is clamped to it; latents have no such range (clip=False) and are returned as
    sampled.
    """

    def __init__(self, scheduler, steps: int, clip: bool = True, progress: bool = True) -> None:
        import inspect

        self.scheduler = scheduler
        self.steps, self.clip, self.progress = steps, clip, progress
        # stochastic schedulers (DDPM-style) take the request's generator; deterministic multistep ones (UniPC) do not
        self.takes_generator = "generator" in inspect.signature(scheduler.step).parameters
        self.scheduler.set_timesteps(steps)

    @property
    def sigmas(self) -> list[float]:
        """The noise level before each step and after the last (flow: steps + 1 values ending at 0)."""
        return self.scheduler.sigmas.tolist()

    def run(self, noise: torch.Tensor, predict: Predict, generator: torch.Generator | None = None, desc: str = "sampling") -> torch.Tensor:
        """`steps` scheduler steps from `noise` (B, C, T, H, W) -> the clean sample."""
        scheduler = self.scheduler
        scheduler.set_timesteps(self.steps)  # a new chain: the scheduler's step counter starts again
        x = noise * getattr(scheduler, "init_noise_sigma", 1.0)
        timesteps = scheduler.timesteps
        for i, t in enumerate(tqdm(timesteps, desc=desc, disable=not self.progress, leave=False)):
            x_in = scheduler.scale_model_input(x, t) if hasattr(scheduler, "scale_model_input") else x  # DDIM's; flow has none
            pred = predict(x_in, torch.full((x.shape[0],), float(t), device=x.device), i)
            extra = {"generator": generator} if self.takes_generator else {}
            result = scheduler.step(pred.float(), t, x, **extra)
            x = result.prev_sample
            if i == len(timesteps) - 1 and getattr(result, "pred_original_sample", None) is not None:
                x = result.pred_original_sample  # DDIM stops at t=0, one small noise level short of clean
        return x.clamp(-1, 1) if self.clip else x


def denoise(
    objective: str,
    steps: int,
    noise: torch.Tensor,
    predict: Predict,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str = "sampling",
    clip: bool = True,
    shift: float = 1.0,
) -> torch.Tensor:
    """One sampling chain with a `Sampler` of its own (the objective's scheduler): `steps` steps from `noise`."""
    return Sampler(make_scheduler(objective, clip, shift), steps, clip, progress).run(noise, predict, generator, desc)


class GuidedModel:
    """Calls a model function with classifier-free guidance and counts the calls.

    `fn(x, t, labels) -> output` is any way of running the model; with guidance it is called once on
    a doubled batch (conditional, then null labels), which counts as one model call.
    """

    def __init__(
        self, model: VideoModel, labels: torch.Tensor | None, guidance: float, null_labels: torch.Tensor | None = None
    ) -> None:
        self.model = model
        self.labels = labels
        self.null_labels = null_labels  # (1 or B, ...): e.g. a negative prompt's embeddings; None: the null class
        conditional = model.config.num_classes > 0 or model.config.text_dim > 0
        self.guided = guidance != 1.0 and labels is not None and (conditional or null_labels is not None)
        self.guidance = guidance
        self.model_calls = 0
        self.window_calls = 0

    def __call__(self, fn: Callable[..., torch.Tensor], x: torch.Tensor, t: torch.Tensor, windows: int) -> torch.Tensor:
        hook = _STEP_HOOK.get()
        if hook is not None:
            hook()
        labels = self.labels
        self.model_calls += 1
        self.window_calls += windows
        dtype = self.model.dtype
        if not self.guided:
            return fn(x.to(dtype), t, labels).float()
        if self.null_labels is not None:
            null = self.null_labels.to(labels.dtype)
            if labels.ndim == 3 and null.shape[1] != labels.shape[1]:  # token embeddings of two lengths (B, L, D):
                length = max(null.shape[1], labels.shape[1])  # zero-padded to the longer, as Wan pads its prompts
                labels, null = (F.pad(e, (0, 0, 0, length - e.shape[1])) for e in (labels, null))
            null = null.expand_as(labels)
        else:
            null = self.model.null_condition(labels)
        both = fn(torch.cat([x, x]).to(dtype), torch.cat([t, t]), torch.cat([labels, null])).float()
        cond, uncond = both.chunk(2)
        return uncond + self.guidance * (cond - uncond)


def initial_noise(
    model: VideoModel, batch: int, frames: int, size: int | tuple[int, int], generator: torch.Generator | None
) -> torch.Tensor:
    """Noise drawn on the CPU from `generator`, so a seed gives the same video on any device: (B, C, T, H, W).

    Drawn frame-major, so the first F frames of a long video's noise are a short video's noise.
    `size`: the frame size, square or (height, width).
    """
    h, w = (size, size) if isinstance(size, int) else size
    shape = (batch, frames, model.config.in_channels, h, w)
    return torch.randn(shape, generator=generator, dtype=torch.float32).transpose(1, 2).contiguous().to(model.device)
