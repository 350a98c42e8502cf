"""Flags several commands share, declared once, and the typed objects the commands receive them as.

`SAMPLING_FLAGS` reach a command as one `SamplingFlags` (parameter `sampling`) and `RUN_FLAGS` as one
`RunFlags` (parameter `run`): a command reads `sampling.options(...)` or `run.setup()`, not seven loose
arguments. No torch here: `vin --help` imports this module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import click

from ..errors import VinError
from ..generation.options import DEFAULTS, FUSION_SCHEDULES, GLOBAL_TOKENS, MAX_STEPS, NOISES, SCHEDULERS, GenerationOptions, make_options


def flags(*options) -> Callable:
    """A decorator applying click options in the order given: flags declared once, shared by commands."""

    def apply(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


def flag_group(param: str, cls: type, *options) -> Callable:
    """Like `flags`, but the command receives the options' values as one `cls` (a dataclass whose fields are the
    options' parameter names), in its parameter `param`."""
    names = [f.name for f in fields(cls)]

    def apply(fn):
        @functools.wraps(fn)
        def command(**params):
            params[param] = cls(**{name: params.pop(name) for name in names})
            return fn(**params)

        return flags(*options)(command)

    return apply


def int_list(text: str, flag: str) -> list[int]:
    """A flag's comma-separated integers (at least one)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise VinError(f"{flag} takes comma-separated integers, got {text!r}") from None
    if not values:
        raise VinError(f"{flag} is empty")
    return values


def setup_run(device: str, threads: int | None):
    """Checks --device and --threads before anything is loaded; returns the torch device."""
    from ..devices import check_threads, resolve_device

    check_threads(threads)
    resolved = resolve_device(device, allow_auto=False)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return resolved


@dataclass(frozen=True)
class SamplingFlags:
    """The SAMPLING_FLAGS: how vin generate and vin eval sample; each field is the `GenerationOptions` field of
    the same name (`None`: the model's value)."""

    guidance: float
    fusion_schedule: str
    fusion_fraction: float
    global_tokens: str
    chunk_frames: int | None
    context_frames: int | None
    keyframe_stride: int | None
    max_steps: int
    scheduler: str | None
    noise: str | None

    def option_fields(self) -> dict[str, object]:
        """These settings as `GenerationOptions` keyword arguments (what `vin.metrics.suite` takes as **options)."""
        return asdict(self)

    def options(self, frames: int, steps: int, seed: int, **more) -> GenerationOptions:
        """The request's `GenerationOptions` with these settings and the command's own (`more`), checked as made."""
        return make_options(frames, steps, seed, **more, **self.option_fields())


@dataclass(frozen=True)
class RunFlags:
    """The RUN_FLAGS: where a command runs, and whether it shows progress."""

    device: str
    threads: int | None
    quiet: bool

    def setup(self):
        """Checks --device and --threads before anything is loaded; returns the torch device."""
        return setup_run(self.device, self.threads)


CHECKPOINT_FLAGS = flags(
    click.option("--checkpoint", type=click.Path(), default=None,
                 help="Checkpoint directory, or a shipped one: default (the VIN model), full (full attention) [default: default]."),
    click.option("--autoencoder", type=click.Path(), default=None,
                 help="Latent-space models: the autoencoder folder to decode with [default: the one recorded at training]."),
)  # fmt: skip
SAMPLING_FLAGS = flag_group(
    "sampling", SamplingFlags,
    click.option("--guidance", type=float, default=DEFAULTS["guidance"], show_default=True, help="Classifier-free guidance scale."),
    click.option("--fusion-schedule", type=click.Choice(FUSION_SCHEDULES), default=DEFAULTS["fusion_schedule"], show_default=True,
                 help="vin: where the --fusion-fraction of the steps that blend the frames two windows share lie (mid, late: with a fraction below 1)."),
    click.option("--fusion-fraction", type=float, default=DEFAULTS["fusion_fraction"], show_default=True,
                 help="vin: fraction of the steps that fuse (1: every step, measured best; the paper's 20 of 50 is 0.4)."),
    click.option("--global-tokens", type=click.Choice(GLOBAL_TOKENS), default=DEFAULTS["global_tokens"], show_default=True,
                 help="vin: global (the method), chunk (each chunk's VIN reads only itself: the no-global-tokens ablation), none."),
    click.option("--chunk-frames", type=int, default=None, help="Frames per chunk or window [default: the model's]."),
    click.option("--context-frames", type=int, default=None, help="Local context K [default: the model's]."),
    click.option("--keyframe-stride", type=int, default=None, help="Keyframe stride s [default: the model's]."),
    click.option("--max-steps", type=int, default=MAX_STEPS, show_default=True,
                 help="The most --steps accepted (sampling time grows with them); raise it to ask for more."),
    click.option("--scheduler", type=click.Choice(SCHEDULERS), default=None,
                 help="euler, ddim, or pipeline (a pretrained pipeline folder's own, e.g. Wan2.1's UniPC) [default: the model's]."),
    click.option("--noise", type=click.Choice(NOISES), default=None,
                 help="The initial noise: independent (a draw per frame) or shuffled (every chunk a permutation of the first "
                      "chunk's frames, FreeNoise's rescheduling) [default: the strategy's: shuffled for vin (independent in a "
                      "continuation) and freenoise]."),
)  # fmt: skip
RUN_FLAGS = flag_group(
    "run", RunFlags,
    click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N."),
    click.option("--threads", type=int, default=None, help="CPU threads, at most the machine's [default: torch's]."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
)  # fmt: skip
