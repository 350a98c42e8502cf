"""Generate with several strategies, lengths and seeds, and evaluate every video (`vin eval --checkpoint`).

The pseudo-strategy `data` evaluates real procedural videos of the model's size (held-out seeds, never
drawn in training) as the reference every figure is read against. Strategies are specs as in `vin bench`
(`vin:k8`, `vin:global_tokens=chunk`, `vin:fusion_schedule=late`): the settings are generation options, so one
run holds an ablation; the spec is the row's label. A trained model's architecture cannot change, so
model settings (`shared`, `factorised`, ...) are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from vin.generation.spec import OPTION_KEYS, StrategySpec, parse_strategy
from vin.data.synthetic import SyntheticConfig, SyntheticVideos
from vin.errors import VinError
from vin.flops import count_flops, frozen
from vin.generation.api import check_request, generate
from vin.generation.options import GenerationOptions, make_options
from vin.generation.strategies import STRATEGIES, frame_size, run_strategy, window_sizes
from vin.metrics.evaluate import VideoMetrics, evaluate_video
from vin.metrics.features import FeatureExtractor
from vin.model.protocol import VideoModel

REFERENCE = "data"


def parse_specs(strategies: list[str]) -> dict[str, StrategySpec | None]:
    """Label -> spec (None for the `data` reference); generation options only."""
    if len(set(strategies)) != len(strategies):
        raise VinError(f"a strategy is listed twice in {','.join(strategies)!r}")
    specs: dict[str, StrategySpec | None] = {}
    for text in strategies:
        if text == REFERENCE:
            specs[text] = None
            continue
        if text.split(":")[0] not in STRATEGIES:
            raise VinError(f"unknown strategy {text.split(':')[0]!r}: choose from {', '.join((REFERENCE, *STRATEGIES))}")
        spec = parse_strategy(text)
        movable = {k: v for k, v in spec.model if k in OPTION_KEYS}  # keyframe_stride etc.: sampling settings too
        spec = replace(spec, model=tuple(kv for kv in spec.model if kv[0] not in movable),
                       options=tuple(sorted({**dict(spec.options), **movable}.items())))  # fmt: skip
        if spec.model:
            raise VinError(f"{text!r} changes the model ({', '.join(k for k, _ in spec.model)}); a trained checkpoint's "
                           "architecture is fixed: use generation settings such as kN or global_tokens=chunk")  # fmt: skip
        specs[text] = spec
    return specs


def training_data_config(checkpoint: Path) -> SyntheticConfig | None:
    """The procedural data a checkpoint was trained on, from its train.yaml (None if it has none)."""
    path = Path(checkpoint) / "train.yaml"
    if not path.is_file():
        return None
    data = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
    if data.get("source", "synthetic") != "synthetic":
        return None
    return SyntheticConfig(**{f.name: data[f.name] for f in fields(SyntheticConfig) if f.name in data})


def strategy_model(model: VideoModel, strategy: str, full_model: VideoModel | None) -> VideoModel:
    """The model that samples `strategy`: `full_model` (a full-attention model) for full, when given."""
    return full_model if strategy == "full" and full_model is not None else model


def check_suite(
    model: VideoModel, strategies: list[str], frame_counts: list[int], seeds: list[int], steps: int,
    full_model: VideoModel | None = None, **options,
) -> None:  # fmt: skip
    """Every (strategy, length) request is checked before anything is generated."""
    if not strategies or not frame_counts or not seeds:
        raise VinError("give at least one strategy, one length and one seed")
    specs = parse_specs(strategies)
    if any(seed < 0 or seed >= 2**20 for seed in seeds):
        raise VinError("evaluation seeds must lie in [0, 2**20): seeds above are training seeds")
    for frames in frame_counts:
        for spec in specs.values():
            if spec is not None:
                m = strategy_model(model, spec.strategy, full_model)
                check_request(m, spec.strategy, make_options(frames, steps, seeds[0], **{**options, **dict(spec.options)}))


def generation_flops(model: VideoModel, strategy: str, frames: int, steps: int, seed: int = 0, **options) -> int:
    """FLOPs of generating one video (matrix products, convolutions and attention); a latent-space model's
    decoding is not counted (it is the same for every strategy)."""
    with frozen(model), count_flops() as counted:
        run_strategy(model, strategy, make_options(frames, steps, seed, progress=False, **options))
    return counted.total


def run_suite(
    model: VideoModel,
    strategies: list[str],
    frame_counts: list[int],
    seeds: list[int],
    steps: int,
    features: FeatureExtractor,
    *,
    fps: float = 16.0,
    flow_method: str = "dis",
    procedural: bool = True,
    data_config: SyntheticConfig | None = None,
    save_videos: Path | None = None,
    progress: bool = True,
    on_row: Callable[[VideoMetrics], None] | None = None,
    full_model: VideoModel | None = None,
    **options,
) -> list[VideoMetrics]:
    """Generates every (length, strategy, seed) video, evaluates it and returns the rows.

    FLOPs are counted (FlopCounterMode) once per (strategy, length), on a one-step generation times the
    number of steps: every strategy makes the same model calls at every step, and the scheduler's
    element-wise updates are not counted. Wall times come from the uncounted runs.
    `data_config`: how the `data` reference videos are drawn (the model's training data; see
    `training_data_config`). `full_model`: samples the `full` rows instead of `model` (the full-attention
    baseline trained on whole clips; chunk figures still use `model`'s chunks). `options` are generation
    options (see `vin.generate`).
    """
    check_suite(model, strategies, frame_counts, seeds, steps, full_model, **options)
    specs = parse_specs(strategies)
    chunk, size = _pixel_chunk_and_size(model, make_options(frame_counts[0], steps, seeds[0], **options))
    data = SyntheticVideos(replace(data_config or SyntheticConfig(), height=size[0], width=size[1]))
    jobs = [(f, s, seed) for f in frame_counts for s in strategies for seed in seeds]
    rows: list[VideoMetrics] = []
    flops: dict[tuple[str, int], int] = {}
    bar = tqdm(jobs, desc="eval", unit="video", disable=not progress, dynamic_ncols=True)
    for frames, strategy, seed in bar:
        bar.set_postfix_str(f"{strategy} {frames} frames seed {seed}")
        spec = specs[strategy]
        if spec is None:
            video, seconds, calls = data.video(seed, frames).frames, None, None
        else:
            video, seconds, calls = _generate_counted(model, full_model, strategy, spec, frames, steps, seed, flops, options)
        name = f"{strategy}/{frames}/{seed}"
        if save_videos is not None:
            from vin.videos import write_video

            write_video(video, save_videos / f"{strategy.replace(':', '_')}-{frames}-{seed}.npy")
        row = evaluate_video(
            np.ascontiguousarray(video), features, chunk, video=name, strategy=strategy, seed=seed, fps=fps,
            flow_method=flow_method, procedural=procedural, flops=flops.get((strategy, frames)), seconds=seconds,
            model_calls=calls,
        )  # fmt: skip
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def _pixel_chunk_and_size(model: VideoModel, options: GenerationOptions) -> tuple[int, tuple[int, int]]:
    """A chunk's length in video frames and a frame's (height, width) in pixels, for the suite's request `options`.
    A latent-space model's videos are decoded, so its latent sizes are scaled to pixels."""
    decoder = model.latent_decoder
    spatial, temporal = (decoder.spatial, decoder.temporal) if decoder is not None else (1, 1)
    height, width = frame_size(model, options)
    return window_sizes(model, options)[0] * temporal, (height * spatial, width * spatial)


def _generate_counted(
    model: VideoModel, full_model: VideoModel | None, strategy: str, spec: StrategySpec, frames: int, steps: int, seed: int,
    flops: dict[tuple[str, int], int], options: dict,
) -> tuple[np.ndarray, float, int]:  # fmt: skip
    """One generated video of the suite: (frames, seconds, model calls). The first video of each (strategy, length)
    also counts its FLOPs into `flops` (a one-step generation times `steps`), outside the timed run."""
    opts = {**options, **dict(spec.options)}
    m = strategy_model(model, spec.strategy, full_model)
    if (strategy, frames) not in flops:
        flops[(strategy, frames)] = steps * generation_flops(m, spec.strategy, frames, 1, seed, **opts)
    gen = generate(m, frames, steps, seed, spec.strategy, **opts)
    return gen.video.numpy(), gen.seconds, gen.model_calls
