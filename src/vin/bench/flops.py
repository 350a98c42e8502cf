"""FLOPs of one denoising step and of a whole video, per strategy and length, counted on the `meta` device.

Each strategy runs for real (`run_strategy` with one step) on a model whose tensors live on the `meta`
device: shapes only, no memory, no arithmetic, so the paper-scale model at 1024 frames is counted in
seconds on a laptop. `vin.flops.count_flops` does the counting (torch's `FlopCounterMode`: matrix
products, convolutions and attention; one multiply-add is 2 FLOPs). On `meta`, attention decomposes
into two batched matrix products, which count exactly what the fused kernels count.

Where the FLOPs go, from the counter's module tracking:
`dit_attention` (attention inside the DiT blocks), `dit_linear` (everything else in the DiT blocks:
projections, MLPs, adaLN), `vin_read` (keyframe embedding, the read and its MLP), `vin_process` (the
VIN's self-attention blocks), `other` (patch embedding, timestep embedding, output layer).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ..flops import FlopCount, count_flops
from ..generation.options import GenerationOptions
from ..generation.strategies import plan, run_strategy
from ..model.vin import VINModel
from .spec import BenchSetup, StrategySpec

BREAKDOWN = ("dit_attention", "dit_linear", "vin_read", "vin_process", "other")
_DIT_BLOCK = re.compile(r"(^|\.)blocks\.\d+$|^DiTBlock$")
_PROCESS_BLOCK = re.compile(r"(^|\.)process\.\d+$")
_INTERFACE = re.compile(r"(^|\.)interface$|^VideoInterface$")


@dataclass
class FlopRow:
    """One strategy at one length. Stable field names: scripts read the JSON (see docs/cost.md)."""

    strategy: str  # the spec as given, e.g. "vin:shared:k12"
    method: str  # the strategy it runs: vin, full, ...
    frames: int  # video frames
    latent_frames: int  # frames the model sees
    tokens: int  # DiT tokens of the whole video (latent frames / patch_t x tokens per frame)
    context_frames: int  # K (latent frames); 0 for one-window strategies
    context_mode: str  # recompute | shared
    attention: str  # 3d | factorised
    steps: int
    flops_step: int  # one denoising step of the whole video
    flops_video: int  # flops_step x steps
    ratio_to_full: float | None  # flops_step / flops_step of `full` at the same length (None without `full`)
    dit_attention: int
    dit_linear: int
    vin_read: int
    vin_process: int
    other: int


def _is_attention(op: str) -> bool:
    return "attention" in op or op.startswith("aten.bmm")


def breakdown(count: FlopCount) -> dict[str, int]:
    """Splits a count by where the FLOPs go (see the module docstring); the parts sum to the total."""
    dit_attention = dit_total = vin_total = vin_process = 0
    for name, ops in count.by_module.items():
        if _DIT_BLOCK.search(name):
            dit_total += sum(ops.values())
            dit_attention += sum(v for op, v in ops.items() if _is_attention(op))
        elif _PROCESS_BLOCK.search(name):
            vin_process += sum(ops.values())
        elif _INTERFACE.search(name):
            vin_total += sum(ops.values())
    parts = {
        "dit_attention": dit_attention,
        "dit_linear": dit_total - dit_attention,
        "vin_read": vin_total - vin_process,
        "vin_process": vin_process,
    }
    parts["other"] = count.total - sum(parts.values())
    return parts


def count_step(model: VINModel, setup: BenchSetup, spec: StrategySpec, frames: int, context_frames: int | None = None) -> FlopCount:
    """FLOPs of one denoising step of `frames` video frames with `spec`, on the model's device."""
    options = setup.options(spec, frames, context_frames)
    with count_flops() as count:
        run_strategy(model, spec.strategy, options, size=setup.frame_size())
    return count


def window_context(model, spec: StrategySpec, options: GenerationOptions) -> int:
    """The K a strategy runs with, as `plan` resolves it: 0 for `full` and `spectral`, which have one window."""
    return 0 if spec.strategy in ("full", "spectral") else plan(model, spec.strategy, options).context_frames


def reference_of(spec: StrategySpec, specs: list[StrategySpec], setup: BenchSetup) -> StrategySpec | None:
    """The `full` spec a spec is compared with: the first whose model has the same attention, else the first."""
    fulls = [s for s in specs if s.strategy == "full"]
    same = [s for s in fulls if setup.model_config(s)["attention"] == setup.model_config(spec)["attention"]]
    return (same or fulls or [None])[0]


def flops_table(
    setup: BenchSetup,
    specs: list[StrategySpec],
    frames: list[int],
    steps: int = 50,
    context_frames: int | None = None,
    device: str = "meta",
) -> list[FlopRow]:
    """Counts every spec at every length; rows ordered by length, then by spec."""
    models: dict[str, VINModel] = {}
    counts: dict[tuple[str, int], FlopCount] = {}
    for spec in specs:
        key = repr(sorted(setup.model_config(spec).items()))
        if key not in models:
            models[key] = setup.build(spec, device)
        model = models[key]
        for n in frames:
            counts[spec.label, n] = count_step(model, setup, spec, n, context_frames)
    cfg = setup.config.model
    h, w = setup.frame_size()
    rows = []
    for n in frames:
        for spec in specs:
            count = counts[spec.label, n]
            ref = reference_of(spec, specs, setup)
            options = setup.options(spec, n, context_frames)
            mcfg = setup.model_config(spec)
            latent = setup.latent_frames(n)
            rows.append(FlopRow(
                strategy=spec.label, method=spec.strategy, frames=n, latent_frames=latent,
                tokens=latent // cfg.patch_t * (h // cfg.patch_hw) * (w // cfg.patch_hw),
                context_frames=window_context(models[repr(sorted(mcfg.items()))], spec, options), context_mode=mcfg["context_mode"],
                attention=mcfg["attention"], steps=steps, flops_step=count.total, flops_video=count.total * steps,
                ratio_to_full=round(count.total / counts[ref.label, n].total, 4) if ref is not None else None,
                **breakdown(count),
            ))  # fmt: skip
    return rows


def rows_as_dicts(rows: list) -> list[dict]:
    return [asdict(row) for row in rows]
