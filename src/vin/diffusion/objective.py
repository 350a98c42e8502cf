"""Training objectives: rectified flow (velocity) or DDPM noise / velocity prediction.

The model always receives a time in [0, 1000]: sigma * 1000 for flow (as diffusers'
FlowMatchEulerDiscreteScheduler feeds it), the integer DDPM step otherwise. A time is one per clip
(B,), or one per chunk (B, N) (the probe's chunk-0-clean loss, the fifo strategy). Loss is taken over
each chunk's own frames; the context frames of a window are inputs only.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler, FlowMatchEulerDiscreteScheduler

from ..model.protocol import VideoModel
from ..model.windows import assemble

NUM_TRAIN_TIMESTEPS = 1000
BETA_SCHEDULE = "squaredcos_cap_v2"  # the cosine schedule: good for pixel-space models


class Objective:
    def __init__(self, kind: str, timestep_sampling: str = "logit_normal", logit_mean: float = 0.0, logit_std: float = 1.0,
                 shift: float = 1.0) -> None:  # fmt: skip
        if kind not in ("flow", "epsilon", "v"):
            raise ValueError(f"unknown objective {kind!r}")
        if timestep_sampling not in ("logit_normal", "uniform"):
            raise ValueError(f"unknown timestep_sampling {timestep_sampling!r}")
        self.kind = kind
        self.timestep_sampling = timestep_sampling
        self.logit_mean, self.logit_std = logit_mean, logit_std
        self.shift = shift  # flow: sigma -> shift * sigma / (1 + (shift - 1) * sigma), as the sampler's schedule
        if kind != "flow":
            ddpm = DDPMScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule=BETA_SCHEDULE)
            self.alphas_cumprod = ddpm.alphas_cumprod  # (1000,)

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """(B,) model times in [0, 1000]."""
        if self.kind == "flow":
            if self.timestep_sampling == "logit_normal":
                sigma = torch.sigmoid(self.logit_mean + self.logit_std * torch.randn(batch, generator=generator))
            else:
                sigma = torch.rand(batch, generator=generator)
            sigma = self.shift * sigma / (1 + (self.shift - 1) * sigma)
            return sigma.clamp(1e-3, 1.0) * NUM_TRAIN_TIMESTEPS
        return torch.randint(0, NUM_TRAIN_TIMESTEPS, (batch,), generator=generator).float()

    def _coefficients(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) with x_t = a * x0 + b * noise, shaped to broadcast over x (B, C, T, H, W).

        t: (B,) one time per clip, or (B, N) one per chunk of T / N frames.
        """
        shape = (-1,) + (1,) * (x.ndim - 1)
        if t.ndim == 2:
            t = t.repeat_interleave(x.shape[2] // t.shape[1], dim=1)  # (B, T)
            shape = (t.shape[0], 1, t.shape[1]) + (1,) * (x.ndim - 3)
        if self.kind == "flow":
            sigma = (t / NUM_TRAIN_TIMESTEPS).view(shape)
            return 1 - sigma, sigma
        ac = self.alphas_cumprod.to(t.device)[t.long()].view(shape)
        return ac.sqrt(), (1 - ac).sqrt()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, b = self._coefficients(t, x0)
        return a * x0 + b * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "flow":
            return noise - x0  # velocity d x_t / d sigma
        if self.kind == "epsilon":
            return noise
        a, b = self._coefficients(t, x0)
        return a * noise - b * x0  # v-prediction

    def clean(self, x_t: torch.Tensor, pred: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The clean sample a prediction implies: x0 from x_t and the model's target (velocity, noise or v) at t."""
        a, b = self._coefficients(t, x_t)
        if self.kind == "flow":
            return x_t - b * pred  # x_t = (1 - sigma) x0 + sigma noise, pred = noise - x0
        if self.kind == "epsilon":
            return (x_t - b * pred) / a
        return a * x_t - b * pred

    def prediction(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The inverse of `clean`: the target that implies x0 at x_t."""
        a, b = self._coefficients(t, x_t)
        if self.kind == "flow":
            return (x_t - x0) / b.clamp(min=1e-6)
        if self.kind == "epsilon":
            return (x_t - a * x0) / b.clamp(min=1e-6)
        return (a * x_t - x0) / b.clamp(min=1e-6)

    def given_times(self, t: torch.Tensor, chunks: int, prob: float, generator: torch.Generator) -> torch.Tensor:
        """Times (B,) -> (B, N) where a `prob` fraction of clips are continuations: their first 1..N-1 chunks
        (uniform) at time 0, given clean, the rest at the clip's time. (B,) unchanged when prob is 0 or N is 1,
        drawing nothing, so a run without continuations keeps its random stream."""
        if prob <= 0 or chunks < 2:
            return t
        b = t.shape[0]
        given = (torch.rand(b, generator=generator) < prob) * torch.randint(1, chunks, (b,), generator=generator)  # (B,)
        clean = torch.arange(chunks)[None, :] < given[:, None]  # (B, N)
        return t[:, None].expand(b, chunks).masked_fill(clean, 0.0)

    def draw(self, shape: tuple[int, ...], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Times (B,) and noise `shape` for a batch; drawn on the CPU, so any device gets the same."""
        return self.sample_timesteps(shape[0], generator), torch.randn(shape, generator=generator)

    def loss(
        self,
        model: VideoModel | torch.nn.Module,  # or DistributedDataParallel around one
        x0: torch.Tensor,
        labels: torch.Tensor | None,
        generator: torch.Generator | None = None,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Denoising loss of a batch of clips (B, C, T, H, W): VIN and DiT trained end to end.

        `model` may be wrapped (DistributedDataParallel); `t` and `noise` are drawn from `generator`
        unless given (a rank's slice of a global batch's draw). `t` may be (B, N), one per chunk: chunks at
        time 0 are given clean (a continuation, `given_times`) and take no part in the loss.
        """
        if t is None or noise is None:
            t, noise = self.draw(x0.shape, generator)
        t, noise = t.to(x0.device), noise.to(x0.device)
        x_t = self.add_noise(x0, noise, t)
        windows = model(x_t, t, labels)  # (B, N, C, K+F, H, W)
        config = getattr(model, "module", model).config
        context = 0 if config.full_frames > 0 else config.context_frames  # a full-attention model has one window
        pred = assemble(windows, context, fuse=False)  # own frames only
        err = (pred.float() - self.target(x0, noise, t).float()).pow(2)  # (B, C, T, H, W)
        if t.ndim == 1:
            return err.mean()
        made = (t > 0).repeat_interleave(x0.shape[2] // t.shape[1], dim=1).to(err.dtype)  # (B, T): frames not given
        return (err.mean(dim=(1, 3, 4)) * made).sum() / made.sum().clamp(min=1)


def make_scheduler(kind: str, clip: bool = True, shift: float = 1.0):
    """The diffusers scheduler that samples a model trained with this objective.

    `clip`: DDIM clamps its clean-sample estimate to [-1, 1] at every step (pixels); off for latents.
    `shift`: flow only, the time shift of the schedule (`model.flow_shift`; Wan2.1 samples 480p at 3).
    """
    if kind == "flow":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=shift)
    return DDIMScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        beta_schedule=BETA_SCHEDULE,
        prediction_type="epsilon" if kind == "epsilon" else "v_prediction",
        clip_sample=clip,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )
