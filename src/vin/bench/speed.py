"""Wall time of one denoising step, per strategy and length, measured side by side in one run.

One step is `run_strategy` with one step: the whole video's noise, one evaluation of the model over
it in the strategy's way, and one scheduler step. Every (strategy, length) is warmed up first, then
timed `repeats` times (CUDA events on a GPU, `perf_counter` on the CPU); the median is reported.
Peak memory: on CUDA the allocator's peak above what was allocated before the step; on the CPU the
peak of live tensor bytes (`LiveTensorMemory`), from one more, untimed, run. Achieved TFLOP/s use the
FLOPs counted on the `meta` device, against a matrix-product ceiling measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import VinError
from ..generation.strategies import run_strategy
from ..model.vin import VINModel
from .flops import count_step, reference_of
from .memory import LiveTensorMemory
from .spec import BenchSetup, StrategySpec

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class SpeedRow:
    """One strategy at one length. Stable field names: scripts read the JSON (see docs/cost.md)."""

    strategy: str  # the spec as given
    method: str
    frames: int  # video frames
    latent_frames: int
    device: str
    dtype: str
    compiled: bool
    repeats: int
    ms_step: float  # median wall time of one denoising step
    ms_min: float
    ratio_to_full: float | None  # ms_step / ms_step of `full` at the same length
    peak_memory_bytes: int | None  # peak above the starting point during one step
    memory_slope_bytes_per_frame: float | None  # least-squares slope of peak memory vs video frames, this strategy
    memory_fit_r2: float | None  # how straight that line is (1 = linear)
    flops_step: int
    tflops: float  # flops_step / ms_step
    matmul_tflops: float  # the ceiling: a square matrix product on the same device and dtype
    matmul_fraction: float  # tflops / matmul_tflops


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Wall times of `repeats` calls after `warmup` calls, in ms (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
    return times


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int | None = None, repeats: int = 5) -> float:
    """The achieved rate of an n x n x n matrix product (n = 8192 on a GPU, 1024 on the CPU)."""
    n = size or (8192 if device.type == "cuda" else 1024)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    ms = statistics.median(time_ms(lambda: a @ b, device, warmup=2, repeats=repeats))
    return 2 * n**3 / (ms / 1000) / 1e12


def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated during `fn()` above what was allocated before it."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    with LiveTensorMemory() as mem:
        fn()
    return mem.peak


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float | None, float | None]:
    """Least-squares slope of ys against xs and the fit's R^2; None with fewer than two points."""
    if len(xs) < 2:
        return None, None
    slope, intercept = np.polyfit(xs, ys, 1)
    residual = np.asarray(ys) - (slope * np.asarray(xs) + intercept)
    total = np.sum((np.asarray(ys) - np.mean(ys)) ** 2)
    return float(slope), float(1 - np.sum(residual**2) / total) if total > 0 else 1.0


Measured = dict[tuple[str, int], tuple[list[float], int | None, int]]  # (label, frames) -> (times in ms, peak bytes, FLOPs)


def speed_table(
    setup: BenchSetup,
    specs: list[StrategySpec],
    frames: list[int],
    device: str = "cpu",
    dtype: str = "fp32",
    warmup: int = 1,
    repeats: int = 3,
    compile: bool = False,
    memory: bool = True,
    context_frames: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[SpeedRow]:
    """Times every spec at every length on `device`; rows ordered by length, then by spec."""
    if dtype not in DTYPES:
        raise VinError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VinError("--device cuda: no CUDA device is available here; use --device cpu")
    if repeats < 1 or warmup < 0:
        raise VinError("repeats must be at least 1 and warm-up at least 0")
    ceiling = matmul_tflops(dev, DTYPES[dtype])
    measured = _measure(setup, specs, frames, dev, DTYPES[dtype], warmup, repeats, compile, memory, context_frames, progress)
    fits = _memory_fits(specs, frames, measured)
    rows = []
    for n in frames:
        for spec in specs:
            times, peak, flops = measured[spec.label, n]
            ms = statistics.median(times)
            ref = reference_of(spec, specs, setup)
            achieved = flops / (ms / 1000) / 1e12
            slope, r2 = fits[spec.label]
            rows.append(SpeedRow(
                strategy=spec.label, method=spec.strategy, frames=n, latent_frames=setup.latent_frames(n),
                device=str(dev), dtype=dtype, compiled=compile, repeats=repeats, ms_step=round(ms, 3),
                ms_min=round(min(times), 3),
                ratio_to_full=round(ms / statistics.median(measured[ref.label, n][0]), 4) if ref is not None else None,
                peak_memory_bytes=peak, memory_slope_bytes_per_frame=None if slope is None else round(slope, 1),
                memory_fit_r2=None if r2 is None else round(r2, 4), flops_step=flops, tflops=round(achieved, 4),
                matmul_tflops=round(ceiling, 3), matmul_fraction=round(achieved / ceiling, 4),
            ))  # fmt: skip
    return rows


def _measure(
    setup: BenchSetup, specs: list[StrategySpec], frames: list[int], dev: torch.device, dtype: torch.dtype, warmup: int,
    repeats: int, compile: bool, memory: bool, context_frames: int | None, progress: Callable[[str], None] | None,
) -> Measured:  # fmt: skip
    """Times one step of every spec at every length, with its peak memory and FLOPs. Specs that build the same
    model share it (built once on `dev`, and once on `meta` to count FLOPs), so each is compiled once."""
    models: dict[str, VINModel] = {}
    meta_models: dict[str, VINModel] = {}
    measured: Measured = {}
    for n in frames:
        for spec in specs:
            key = repr(sorted(setup.model_config(spec).items()))
            if key not in models:
                models[key] = setup.build(spec, dev, dtype)
                meta_models[key] = setup.build(spec, "meta")
                if compile:
                    models[key].compile_blocks()
            model, options = models[key], setup.options(spec, n, context_frames)
            step = lambda: run_strategy(model, spec.strategy, options, size=setup.frame_size())  # noqa: E731
            times = time_ms(step, dev, warmup, repeats)
            peak = peak_memory(step, dev) if memory else None
            flops = count_step(meta_models[key], setup, spec, n, context_frames).total
            measured[spec.label, n] = (times, peak, flops)
            if progress is not None:
                progress(f"{spec.label:24s} {n:6d} frames  {statistics.median(times):10.1f} ms/step")
    return measured


def _memory_fits(specs: list[StrategySpec], frames: list[int], measured: Measured) -> dict[str, tuple[float | None, float | None]]:
    """Per spec: the slope of peak memory against video frames and the fit's R^2 (lengths without a peak left out)."""
    fits = {}
    for spec in specs:
        points = [(n, measured[spec.label, n][1]) for n in frames if measured[spec.label, n][1] is not None]
        fits[spec.label] = linear_fit([p[0] for p in points], [p[1] for p in points])
    return fits
