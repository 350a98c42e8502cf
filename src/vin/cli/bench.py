"""`vin bench flops` and `vin bench speed`: what the strategies cost, side by side (a model config, no checkpoint)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ..errors import VinError
from .flags import flags


@click.group()
def bench() -> None:
    """What the strategies cost: FLOPs (counted on the meta device) and wall time, side by side.

    Strategies are specs such as vin, full, vin:k12, vin:shared:k8 or full:factorised
    (settings: kN, shared, recompute, 3d, factorised, key=value; see docs/cost.md).
    """


BENCH_FLAGS = flags(  # both bench commands
    click.option("--config", "config", type=click.Path(dir_okay=False), required=True,
                 help="Model config (YAML), e.g. configs/paper.yaml."),
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                 help="Config override, e.g. --set model.depth=4 (repeatable)."),
    click.option("--strategies", default="vin,full", show_default=True, help="Comma-separated strategy specs."),
    click.option("--frames", "frames", default="64,128,256,512,1024", show_default=True,
                 help="Comma-separated video lengths, in video frames."),
    click.option("--context-frames", type=int, default=None, help="K for specs without kN [default: the model's]."),
    click.option("--json", "json_out", type=click.Path(), default=None, help="Write the rows as JSON to this file."),
    click.option("--markdown", "md_out", type=click.Path(), default=None, help="Write the tables as markdown to this file."),
    click.option("--plot", "plot_out", type=click.Path(), default=None, help="Write a plot (.png, .svg or .pdf)."),
)  # fmt: skip


def _bench_setup(config: str, overrides: tuple[str, ...], strategies: str, frames: str, json_out: str | None,
                 md_out: str | None, plot_out: str | None):  # fmt: skip
    """Checks the output paths, the specs and the lengths before any work; (setup, specs, lengths)."""
    from ..bench import BenchSetup, parse_frames, parse_strategies
    from ..bench.report import PLOT_SUFFIXES, check_output
    from ..config import load_config

    for path, suffixes in ((json_out, (".json",)), (md_out, (".md",)), (plot_out, PLOT_SUFFIXES)):
        if path:
            check_output(path, suffixes)
    setup = BenchSetup(load_config(config, overrides))
    specs, lengths = parse_strategies(strategies), parse_frames(frames)
    for n in lengths:
        setup.latent_frames(n)  # a length the autoencoder cannot make fails here, before any work
    return setup, specs, lengths


def _bench_outputs(rows: list, markdown: str, json_out: str | None, md_out: str | None, plot_out: str | None,
                   plot: Callable[[list, str], object]) -> None:  # fmt: skip
    """Prints the tables and writes the files asked for; `plot(rows, path)` draws the plot."""
    from ..bench.report import write_json, write_text

    click.echo(markdown)
    if json_out:
        write_json(rows, json_out)
    if md_out:
        write_text(markdown, md_out)
    if plot_out:
        plot(rows, plot_out)


@bench.command("flops")
@BENCH_FLAGS
@click.option("--steps", type=int, default=50, show_default=True, help="Denoising steps of a whole video.")
def bench_flops(config: str, overrides: tuple[str, ...], strategies: str, frames: str, context_frames: int | None,
                json_out: str | None, md_out: str | None, plot_out: str | None, steps: int) -> None:  # fmt: skip
    """FLOPs of one denoising step and of a whole video, per strategy and length (meta device: no memory)."""
    from ..bench import flops_table
    from ..bench.report import flops_markdown, plot_flops

    if steps < 1:
        raise VinError(f"--steps must be at least 1, got {steps}")
    setup, specs, lengths = _bench_setup(config, overrides, strategies, frames, json_out, md_out, plot_out)
    rows = flops_table(setup, specs, lengths, steps, context_frames)
    _bench_outputs(rows, flops_markdown(rows), json_out, md_out, plot_out, lambda r, p: plot_flops(r, p, f"({Path(config).stem})"))


@bench.command("speed")
@BENCH_FLAGS
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed steps before timing each row.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Timed steps per row (the median is reported).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the DiT blocks (compilation happens in the warm-up).")
@click.option("--no-memory", is_flag=True, help="Skip the peak-memory measurement.")
@click.option("--threads", type=int, default=None, help="CPU threads, at most the machine's [default: torch's].")
def bench_speed(config: str, overrides: tuple[str, ...], strategies: str, frames: str, context_frames: int | None,
                json_out: str | None, md_out: str | None, plot_out: str | None, device: str, dtype: str, warmup: int,
                repeats: int, compile_: bool, no_memory: bool, threads: int | None) -> None:  # fmt: skip
    """Median wall time of one denoising step per strategy and length, side by side, with peak memory."""
    from ..bench import speed_table
    from ..bench.report import plot_speed, speed_markdown
    from ..devices import check_threads

    if check_threads(threads) is not None:
        import torch

        torch.set_num_threads(threads)
    setup, specs, lengths = _bench_setup(config, overrides, strategies, frames, json_out, md_out, plot_out)
    rows = speed_table(setup, specs, lengths, device, dtype, warmup, repeats, compile_, not no_memory, context_frames,
                       progress=lambda line: click.echo(line, err=True))  # fmt: skip
    title = f"({Path(config).stem}, {rows[0].device}, {dtype})"
    _bench_outputs(rows, speed_markdown(rows), json_out, md_out, plot_out, lambda r, p: plot_speed(r, p, title))
