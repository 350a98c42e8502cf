"""The denoising loop shared by every generation strategy, and classifier-free guidance.

A strategy supplies `predict(x_t, t, step_index) -> prediction` for the whole video (B, C, T, H, W);
the loop asks diffusers' scheduler to step the whole video at once. `on_each_step` lets a caller (the demo)
stop a request at its next step: every strategy's model calls go through `GuidedModel`, which calls the hook.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..model.protocol import VideoModel
from .objective import Objective, make_scheduler

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


@dataclass(frozen=True)
class Known:
    """Frames given in advance (a continuation): the first G frames of the video, which sampling keeps.

    `frames` (B, C, G, H, W): clean, in the model's space (pixels in [-1, 1], or latents); `noise` (B, C, G, H, W):
    those frames' share of the initial noise; `objective`: how the model's x_t mixes a clean frame and noise.
    Before every model call the given frames of x_t are replaced by the given frames noised to x_t's level
    (replacement, as inpainting samplers do), so every other frame is denoised beside them; the sample ends with
    them exactly. `guidance` > 0 adds reconstruction guidance (Ho et al., Video Diffusion Models, 2022): the
    other frames' clean estimate moves down the gradient of how far the model's clean estimate of the given
    frames is from them, `x0 -= guidance / 2 * grad` (a backward pass through the model at every step).
    """

    frames: torch.Tensor
    noise: torch.Tensor
    objective: Objective
    guidance: float = 0.0

    @property
    def count(self) -> int:
        return self.frames.shape[2]

    def impose(self, x: torch.Tensor, t: torch.Tensor | None, start: int = 0) -> torch.Tensor:
        """x (B, C, T, H, W), frames [start, start + T) of the video at model time `t` (B,) -> a copy of x whose
        given frames are the given ones at that level (`t` None: clean). x itself is returned if none is given."""
        end = min(self.count, start + x.shape[2])
        if end <= start:
            return x
        given = self.frames[:, :, start:end]
        if t is not None:
            given = self.objective.add_noise(given, self.noise[:, :, start:end], t.to(given.device))
        x = x.clone()
        x[:, :, : end - start] = given.to(x.dtype)
        return x


class Sampler:
    """The denoising loop of one request: its scheduler built once, then `run` for each sampling chain.

    `scheduler`: a diffusers scheduler (the model's: `model.make_scheduler`); `clip`: pixel space, where samples
    live in [-1, 1]: the result is clamped to it; latents have no such range (clip=False) and are returned as
    sampled. `known`: frames given in advance (a continuation), kept by every chain.
    """

    def __init__(self, scheduler, steps: int, clip: bool = True, progress: bool = True, known: Known | None = None) -> None:
        import inspect

        self.scheduler = scheduler
        self.steps, self.clip, self.progress = steps, clip, progress
        self.known = known
        # stochastic schedulers (DDPM-style) take the request's generator; deterministic multistep ones (UniPC) do not
        self.takes_generator = "generator" in inspect.signature(scheduler.step).parameters
        self.scheduler.set_timesteps(steps)

    @property
    def sigmas(self) -> list[float]:
        """The noise level before each step and after the last (flow: steps + 1 values ending at 0)."""
        return self.scheduler.sigmas.tolist()

    def level(self, i: int, t: torch.Tensor) -> torch.Tensor:
        """The noise level of x_t before step `i`, as a model time (B,): sigma * 1000 from a flow scheduler's own
        sigmas (UniPC rounds its timesteps to whole numbers), the DDPM step `t` otherwise."""
        sigmas = getattr(self.scheduler, "sigmas", None)
        if self.known is not None and self.known.objective.kind == "flow" and sigmas is not None:
            return torch.full_like(t, float(sigmas[i]) * 1000)
        return t

    def reconstruction_guided(self, predict: Predict, x: torch.Tensor, time: torch.Tensor, i: int, start: int) -> torch.Tensor:
        """`predict(x, time, i)` with the clean estimate of the frames not given moved down the gradient of the given
        frames' reconstruction error (`Known`); x: frames [start, start + T) of the video."""
        known = self.known
        level = self.level(i, time)
        given = max(0, min(known.count - start, x.shape[2]))
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            pred = predict(xg, time, i)
            x0 = known.objective.clean(xg, pred.float(), level)
            error = (x0[:, :, :given] - known.frames[:, :, start : start + given]).square().sum()
            (grad,) = torch.autograd.grad(error, xg)
        x0 = x0.detach().clone()
        x0[:, :, given:] -= known.guidance / 2 * grad[:, :, given:]
        return known.objective.prediction(x, x0, level)

    def run(
        self, noise: torch.Tensor, predict: Predict, generator: torch.Generator | None = None, desc: str = "sampling",
        start: int = 0,
    ) -> torch.Tensor:  # fmt: skip
        """`steps` scheduler steps from `noise` (B, C, T, H, W), frames [start, start + T) of the video -> the clean
        sample; the video's given frames (`known`) are kept."""
        scheduler, known = self.scheduler, self.known
        scheduler.set_timesteps(self.steps)  # a new chain: the scheduler's step counter starts again
        x = noise * getattr(scheduler, "init_noise_sigma", 1.0)
        timesteps = scheduler.timesteps
        for i, t in enumerate(tqdm(timesteps, desc=desc, disable=not self.progress, leave=False)):
            time = torch.full((x.shape[0],), float(t), device=x.device)
            if known is not None:
                x = known.impose(x, self.level(i, time), start)
            x_in = scheduler.scale_model_input(x, t) if hasattr(scheduler, "scale_model_input") else x  # DDIM's; flow has none
            if known is not None and known.guidance > 0 and start < known.count:
                pred = self.reconstruction_guided(predict, x_in, time, i, start)
            else:
                pred = predict(x_in, time, i)
            extra = {"generator": generator} if self.takes_generator else {}
            result = scheduler.step(pred.float(), t, x, **extra)
            x = result.prev_sample
            if i == len(timesteps) - 1 and getattr(result, "pred_original_sample", None) is not None:
                x = result.pred_original_sample  # DDIM stops at t=0, one small noise level short of clean
        if known is not None:
            x = known.impose(x, None, start)
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


@dataclass(frozen=True)
class ChunkConditions:
    """A condition per run of chunks (prompt travel): `spans` ((first, end), ...) are chunk ranges that cover the
    video in order, and `labels[i]` (B, ...) is span i's condition: class ids, or a text model's prompt embeddings.
    A strategy runs the model once per span on that span's windows (`per_span`), so a prompt reaches only its
    own chunks while the VIN still reads the whole video."""

    spans: tuple[tuple[int, int], ...]
    labels: tuple[torch.Tensor, ...]

    @classmethod
    def of(cls, per_chunk: list[torch.Tensor]) -> "ChunkConditions":
        """One condition per chunk -> runs of equal neighbours (compared by identity: give one tensor per prompt)."""
        spans, labels = [], []
        for i, label in enumerate(per_chunk):
            if labels and label is labels[-1]:
                spans[-1] = (spans[-1][0], i + 1)
            else:
                spans.append((i, i + 1))
                labels.append(label)
        return cls(tuple(spans), tuple(labels))

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "ChunkConditions":
        return ChunkConditions(self.spans, tuple(fn(label) for label in self.labels))

    def at(self, chunk: int) -> torch.Tensor:
        """The condition of one chunk."""
        return next(label for (a, e), label in zip(self.spans, self.labels) if a <= chunk < e)

    def within(self, first: int, end: int) -> "ChunkConditions":
        """The spans of chunks [first, end) of the video, numbered from `first`."""
        spans, labels = [], []
        for (a, e), label in zip(self.spans, self.labels):
            if max(a, first) < min(e, end):
                spans.append((max(a, first) - first, min(e, end) - first))
                labels.append(label)
        return ChunkConditions(tuple(spans), tuple(labels))


Condition = torch.Tensor | ChunkConditions | None


def per_span(labels: Condition, run: Callable[[torch.Tensor | None, slice | None], torch.Tensor], skip: int = 0) -> torch.Tensor:
    """`run(condition, chunks)` -> windows (B, n, ...) of those chunks, once for one condition (`chunks` None: all from
    `skip` on), or once per span of a `ChunkConditions`, joined in chunk order. `skip`: chunks before it are
    context only (fifo's finished head) and are not run."""
    if not isinstance(labels, ChunkConditions):
        return run(labels, None if skip == 0 else slice(skip, None))
    parts = [run(label, slice(max(a, skip), e)) for (a, e), label in zip(labels.spans, labels.labels) if e > skip]
    return torch.cat(parts, dim=1)


class GuidedModel:
    """Calls a model function with classifier-free guidance and counts the calls.

    `fn(x, t, labels) -> output` is any way of running the model; with guidance it is called once on
    a doubled batch (conditional, then null labels), which counts as one model call. `labels` may be a
    `ChunkConditions`: each span's condition is doubled with its own null.
    """

    def __init__(
        self, model: VideoModel, labels: Condition, guidance: float, null_labels: torch.Tensor | None = None
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
        both = labels.map(self.with_null) if isinstance(labels, ChunkConditions) else self.with_null(labels)
        cond, uncond = fn(torch.cat([x, x]).to(dtype), torch.cat([t, t]), both).float().chunk(2)
        return uncond + self.guidance * (cond - uncond)

    def with_null(self, labels: torch.Tensor) -> torch.Tensor:
        """A condition (B, ...) and its unconditional counterpart, as one doubled batch (2B, ...)."""
        if self.null_labels is not None:
            null = self.null_labels.to(labels.dtype)
            if labels.ndim == 3 and null.shape[1] != labels.shape[1]:  # token embeddings of two lengths (B, L, D):
                length = max(null.shape[1], labels.shape[1])  # zero-padded to the longer, as Wan pads its prompts
                labels, null = (F.pad(e, (0, 0, 0, length - e.shape[1])) for e in (labels, null))
            null = null.expand_as(labels)
        else:
            null = self.model.null_condition(labels)
        return torch.cat([labels, null])


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
