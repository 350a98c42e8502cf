"""Tables (markdown), JSON and plots of benchmark rows, written atomically."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from ..errors import VinError
from ..files import atomic_path
from .flops import FlopRow
from .speed import SpeedRow

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_output(path: str | Path, suffixes: tuple[str, ...]) -> Path:
    """Fails before any work if `path` cannot be written or has the wrong suffix."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise VinError(f"output {path} must end in one of {', '.join(suffixes)}")
    if not path.parent.is_dir():
        raise VinError(f"output folder {path.parent} does not exist; create it first (mkdir -p {path.parent})")
    if path.is_dir():
        raise VinError(f"output {path} is a directory; give a file name")
    return path


def write_atomic(path: str | Path, write: Callable[[str], None]) -> Path:
    """Calls `write(temporary path)` next to `path`, then renames it into place: no partial files."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_json(rows: list, path: str | Path) -> Path:
    text = json.dumps([asdict(row) for row in rows], indent=1) + "\n"
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_text(text: str, path: str | Path) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def _g(flops: float) -> str:
    """FLOPs in a short unit: 1.23e12 -> '1.23 T'."""
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if abs(flops) >= scale:
            return f"{flops / scale:.3g} {unit}"
    return f"{flops:.3g}"


def _table(header: list[str], body: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body]) + "\n"


def flops_markdown(rows: list[FlopRow]) -> str:
    """Two tables: FLOPs per step with the ratio to full, and where each row's FLOPs go (percent)."""
    ratio = lambda r: "-" if r.ratio_to_full is None else f"{r.ratio_to_full:.3f}"  # noqa: E731
    main = _table(
        ["strategy", "frames", "latent frames", "K", "FLOPs / step", "FLOPs / video", "ratio to full", "fewer than full"],
        [[r.strategy, str(r.frames), str(r.latent_frames), str(r.context_frames), _g(r.flops_step), _g(r.flops_video), ratio(r),
          "-" if r.ratio_to_full is None else f"{(1 - r.ratio_to_full) * 100:.1f}%"] for r in rows],
    )  # fmt: skip
    pct = lambda part, r: f"{100 * part / r.flops_step:.1f}%" if r.flops_step else "-"  # noqa: E731
    where = _table(
        ["strategy", "frames", "DiT attention", "DiT linear", "VIN read", "VIN process", "other"],
        [[r.strategy, str(r.frames), pct(r.dit_attention, r), pct(r.dit_linear, r), pct(r.vin_read, r),
          pct(r.vin_process, r), pct(r.other, r)] for r in rows],
    )  # fmt: skip
    return main + "\nWhere the FLOPs of one step go:\n\n" + where


def speed_markdown(rows: list[SpeedRow]) -> str:
    def mem(r: SpeedRow) -> str:
        return "-" if r.peak_memory_bytes is None else f"{r.peak_memory_bytes / 2**20:.1f}"

    main = _table(
        ["strategy", "frames", "ms / step (median)", "full / this", "peak MiB", "TFLOP/s", "of matmul rate"],
        [[r.strategy, str(r.frames), f"{r.ms_step:.1f}", "-" if not r.ratio_to_full else f"{1 / r.ratio_to_full:.2f}x",
          mem(r), f"{r.tflops:.3g}", f"{100 * r.matmul_fraction:.1f}%"] for r in rows],
    )  # fmt: skip
    seen, fits = set(), []
    for r in rows:
        if r.strategy not in seen and r.memory_slope_bytes_per_frame is not None:
            seen.add(r.strategy)
            fits.append([r.strategy, f"{r.memory_slope_bytes_per_frame / 2**10:.1f}", f"{r.memory_fit_r2:.4f}"])
    if fits:
        main += "\nPeak memory against video frames, least-squares line:\n\n" + _table(["strategy", "KiB per frame", "R^2"], fits)
    return main


def _plot(path: str | Path, draw: Callable) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    draw(axes)
    for ax in axes:
        ax.xaxis.set_minor_formatter(NullFormatter())  # the lengths are labelled; no 2x10^2 in between
    fig.tight_layout()
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format=Path(path).suffix[1:]))
    finally:
        plt.close(fig)


def _series(rows: list, value: Callable) -> dict[str, tuple[list[int], list[float]]]:
    out: dict[str, tuple[list[int], list[float]]] = {}
    for r in rows:
        v = value(r)
        if v is not None:
            xs, ys = out.setdefault(r.strategy, ([], []))
            xs.append(r.frames)
            ys.append(v)
    return out


def plot_flops(rows: list[FlopRow], path: str | Path, title: str = "") -> Path:
    def draw(axes) -> None:
        for label, (xs, ys) in _series(rows, lambda r: r.flops_step / 1e12).items():
            axes[0].plot(xs, ys, marker="o", label=label)
        for label, (xs, ys) in _series(rows, lambda r: r.ratio_to_full).items():
            axes[1].plot(xs, ys, marker="o", label=label)
        axes[0].set(xscale="log", yscale="log", xlabel="video frames", ylabel="TFLOPs per denoising step",
                    title=f"FLOPs per step {title}".strip())  # fmt: skip
        axes[1].set(xscale="log", xlabel="video frames", ylabel="FLOPs / FLOPs of full", title="ratio to full")
        for ax in axes:
            ax.set_xticks(sorted({r.frames for r in rows}), [str(f) for f in sorted({r.frames for r in rows})])
            ax.grid(alpha=0.3)
        axes[1].axhline(1.0, color="gray", lw=0.8)
        axes[1].legend(fontsize=8)

    return _plot(path, draw)


def plot_speed(rows: list[SpeedRow], path: str | Path, title: str = "") -> Path:
    def draw(axes) -> None:
        for label, (xs, ys) in _series(rows, lambda r: r.ms_step).items():
            axes[0].plot(xs, ys, marker="o", label=label)
        for label, (xs, ys) in _series(rows, lambda r: None if r.peak_memory_bytes is None else r.peak_memory_bytes / 2**20).items():
            axes[1].plot(xs, ys, marker="o", label=label)
        axes[0].set(xscale="log", yscale="log", xlabel="video frames", ylabel="ms per denoising step (median)",
                    title=f"time per step {title}".strip())  # fmt: skip
        axes[1].set(xlabel="video frames", ylabel="peak MiB during one step", title="peak memory")
        for ax in axes:
            ax.grid(alpha=0.3)
        axes[0].set_xticks(sorted({r.frames for r in rows}), [str(f) for f in sorted({r.frames for r in rows})])
        axes[0].legend(fontsize=8)

    return _plot(path, draw)
