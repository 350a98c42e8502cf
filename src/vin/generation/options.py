"""What a generation request may ask for, and the checks that need no model (no torch here: the CLI's
help and its flag checks import this alone).

`GenerationOptions` is the one declaration of the sampling settings: `vin generate`, `vin eval` and
`vin.generate(...)` all fill it; `None` means "the model's value", decided in `strategies.plan` only.
An instance is checked when it is made (`__post_init__`): every request is validated once, where it enters.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import VinError

STRATEGIES = ("vin", "full", "autoregressive", "independent", "overlap", "freenoise", "spectral", "fifo")
FUSION_SCHEDULES = ("early", "mid", "late", "none")
GLOBAL_TOKENS = ("global", "chunk", "none")
SCHEDULERS = ("euler", "ddim", "pipeline")
NOISES = ("independent", "shuffled")
INIT_MODES = ("noised", "clean")
MAX_SEED = 2**63 - 1  # torch.Generator seeds are 64-bit; negative seeds would alias large ones
# The time check: a step runs the model over the whole video, so sampling time grows with the steps. 1000 is the
# schedulers' training timesteps (DDIM cannot take more); 25-50 is the usual. Raised by --max-steps / max_steps=.
MAX_STEPS = 1000


@dataclass
class GenerationOptions:
    """What to generate and how; `None` means the model's own value."""

    frames: int = 256
    steps: int = 25
    max_steps: int = MAX_STEPS  # the upper bound on steps, checked before any work (raise it to mean more)
    seed: int = 0
    label: int | tuple[int, ...] | None = None  # class-conditional models: one label, or one per chunk (prompt travel)
    guidance: float = 1.0
    chunk_frames: int | None = None  # F
    context_frames: int | None = None  # K (vin, autoregressive, and the windows of the baselines)
    keyframe_stride: int | None = None  # s
    fusion_schedule: str = "early"  # vin: which steps blend overlapping frames: early | mid | late | none
    fusion_fraction: float = 1.0  # vin: the fraction of the steps that fuse (measured: 1.0; the paper's 20 of 50 is 0.4)
    global_tokens: str = "global"  # vin: global (the method) | chunk (each chunk reads only itself) | none
    # vin: chunks whose windows one DiT call runs (the same video up to float rounding; a model with shared context
    # runs all at once). 8 measured fastest on the CPU at 512 frames (1 and 2 threads: 1959 and 1155 ms a step against
    # 2445 and 1280 all at once) and bounds the activations (benchmarks/results.md)
    window_batch: int = 8
    # the initial noise: `independent` (every frame its own draw) or `shuffled` (FreeNoise's rescheduling: every chunk's
    # frames a permutation of the first chunk's); None: the strategy's own (`strategies.STRATEGY_NOISE`; in a continuation
    # `CONTINUATION_NOISE`)
    noise: str | None = None
    overlap_frames: int | None = None  # overlap / freenoise: frames shared by neighbouring windows [F/2]
    queue: int = 4  # fifo: chunks in flight at once (a chunk starts ceil(steps / queue) steps after its predecessor)
    cutoff: float = 0.25  # spectral: fraction of the temporal frequency band taken from the global branch
    position_interpolation: bool = True  # full / spectral: squeeze a long window's positions into the trained range
    scheduler: str | None = None  # euler | ddim | pipeline (a pretrained pipeline folder's own, e.g. Wan2.1's UniPC)
    init_frames: int | None = None  # a continuation: frames taken from the start of the init video [all of it]
    init_guidance: float = 1.0  # a continuation: reconstruction guidance towards the given frames (0: replacement alone)
    # a continuation with vin: `noised` (the given frames noised to each step's level, replacement) or `clean` (wholly
    # given chunks at time 0, a time per chunk, as a model trained with train.init_prob saw them)
    init_mode: str = "noised"
    height: int | None = None  # frame height of the video, in pixels (decoded) [the model's]
    width: int | None = None  # frame width of the video, in pixels (decoded) [the model's]
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.label, (list, tuple)):  # one per chunk; a single one is the video's
            self.label = tuple(self.label) if len(self.label) != 1 else self.label[0]
        check_options(self)


OPTION_NAMES = tuple(f.name for f in fields(GenerationOptions))
DEFAULTS = {f.name: f.default for f in fields(GenerationOptions)}  # what flags and pages default to: declared once


def make_options(frames: int, steps: int, seed: int, **options) -> GenerationOptions:
    """`GenerationOptions` from keyword options (checked as it is made); an unknown name is an error."""
    unknown = set(options) - set(OPTION_NAMES)
    if unknown:
        raise TypeError(f"unknown generation options: {', '.join(sorted(unknown))}")
    return GenerationOptions(frames=frames, steps=steps, seed=seed, **options)


def check_options(o: GenerationOptions) -> GenerationOptions:
    """Every check that needs no model: types, ranges and names (run by `GenerationOptions` itself when it is
    made). Returns `o`; raises a one-line VinError."""
    _whole("frames", o.frames, 1)
    _whole("max_steps", o.max_steps, 1)
    _whole("steps", o.steps, 1)
    if o.steps > o.max_steps:
        raise VinError(f"steps must be at most {o.max_steps}, got {o.steps}: sampling time grows with every step (25-50 "
                       "is the usual); ask for fewer, or raise the bound with --max-steps (max_steps=) if you mean it")  # fmt: skip
    _whole("seed", o.seed, 0, MAX_SEED)
    _whole("queue", o.queue, 1)
    _whole("window_batch", o.window_batch, 1)
    for name in ("chunk_frames", "keyframe_stride", "height", "width", "init_frames"):
        if getattr(o, name) is not None:
            _whole(name, getattr(o, name), 1)
    for name in ("context_frames", "overlap_frames"):
        if getattr(o, name) is not None:
            _whole(name, getattr(o, name), 0)
    for label in o.label if isinstance(o.label, tuple) else (o.label,):
        if label is not None:
            _whole("label", label, 0)
    for name, value, allowed in (("fusion_schedule", o.fusion_schedule, FUSION_SCHEDULES),
                                 ("global_tokens", o.global_tokens, GLOBAL_TOKENS),
                                 ("scheduler", o.scheduler, (None,) + SCHEDULERS),
                                 ("noise", o.noise, (None,) + NOISES),
                                 ("init_mode", o.init_mode, INIT_MODES)):  # fmt: skip
        if value not in allowed:
            raise VinError(f"{name} must be one of {', '.join(str(v) for v in allowed if v is not None)}, got {value!r}")
    for name, low, high in (("guidance", 0.0, 100.0), ("fusion_fraction", 0.0, 1.0), ("cutoff", 0.0, 1.0),
                            ("init_guidance", 0.0, 100.0)):  # fmt: skip
        value = getattr(o, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise VinError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    if o.fusion_schedule in ("mid", "late") and o.fusion_fraction == 1.0:  # every step fuses: no place to choose
        raise VinError(f"fusion_schedule={o.fusion_schedule!r} places fusion_fraction of the steps, and fusion_fraction=1 fuses "
                       "every step, so it would change nothing: give a fraction below 1 (the paper's 20 of 50 steps: 0.4)")  # fmt: skip
    return o


def _whole(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f"in [{low}, {high}]" if high is not None else f"of at least {low}"
        raise VinError(f"{name} must be a whole number {span}, got {value!r}")
