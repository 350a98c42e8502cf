"""The `vin` command line: train, generate.

Every user error is one line on stderr and exit code 2; no stack traces, no partial files.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from .errors import VinError


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


class _Group(click.Group):
    """Turns VinError (and Ctrl-C) into one clear line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VinError as err:
            _fail(str(err))
        except KeyboardInterrupt:
            _fail("interrupted")


@click.group(cls=_Group)
@click.version_option(package_name="vin")
def main() -> None:
    """vin: long videos from a video DiT, chunk-parallel with a Video Interface Network."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(config: str, overrides: tuple[str, ...], quiet: bool) -> None:
    """Train a model from CONFIG (YAML), with optional section.key=value OVERRIDES.

    Example: vin train configs/tiny.yaml train.steps=100 train.out_dir=runs/mine
    """
    from .config import load_config
    from .train import train as run_training

    cfg = load_config(config, overrides)
    out = run_training(cfg, progress=not quiet)
    summary = json.loads((out / "summary.json").read_text())
    click.echo(f"trained {summary['steps']} steps in {summary['train_seconds']} s, "
               f"final loss {summary['final_loss_avg50']:.4f}; checkpoint in {out}")  # fmt: skip


@main.command()
@click.option("--checkpoint", type=click.Path(), default=None, help="Checkpoint directory [default: the shipped model].")
@click.option("--frames", type=int, default=256, show_default=True, help="Video length; a multiple of the chunk size.")
@click.option("--steps", type=int, default=25, show_default=True, help="Denoising steps.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", type=click.Path(), required=True, help="Output file: .mp4, .gif or .npy (raw frames).")
@click.option("--label", type=int, default=None, help="Class label, for class-conditional models.")
@click.option("--guidance", type=float, default=1.0, show_default=True, help="Classifier-free guidance scale.")
@click.option("--fusion", "fusion_fraction", type=float, default=0.4, show_default=True,
              help="Fraction of the steps (the first ones) with early fusion of overlapping frames.")  # fmt: skip
@click.option("--chunk-frames", type=int, default=None, help="Frames per chunk [default: the model's].")
@click.option("--context-frames", type=int, default=None, help="Local context K [default: the model's].")
@click.option("--keyframe-stride", type=int, default=None, help="Keyframe stride s [default: the model's].")
@click.option("--fps", type=int, default=16, show_default=True)
@click.option("--upscale", type=int, default=1, show_default=True, help="Enlarge pixels N times in mp4/gif, for viewing.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--threads", type=int, default=0, help="CPU threads [default: torch's].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of a sentence.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(checkpoint, frames, steps, seed, out, label, guidance, fusion_fraction, chunk_frames, context_frames,
             keyframe_stride, fps, upscale, device, threads, as_json, quiet) -> None:  # fmt: skip
    """Generate a long video chunk-parallel with the VIN and write it atomically to --out."""
    import torch

    from .generation.api import check_request, generate as run_generation
    from .io import check_output_path, default_checkpoint, load_model, write_video
    from .train import resolve_device

    out_path = check_output_path(out)
    if upscale < 1:
        raise VinError(f"--upscale must be at least 1, got {upscale}")
    if threads > 0:
        torch.set_num_threads(threads)
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint()
    model = load_model(ckpt, resolve_device(device))
    check_request(model, frames, steps, label, guidance, fusion_fraction, chunk_frames, context_frames, keyframe_stride)
    start = time.perf_counter()
    video = run_generation(model, frames, steps, seed, label, guidance, fusion_fraction, chunk_frames, context_frames,
                           keyframe_stride, progress=not quiet)  # fmt: skip
    seconds = time.perf_counter() - start
    write_video(video.numpy(), out_path, fps=fps, upscale=upscale)
    t, h, w, _ = video.shape
    if as_json:
        click.echo(json.dumps({"path": str(out_path), "frames": t, "height": h, "width": w, "steps": steps,
                               "seed": seed, "checkpoint": str(ckpt), "seconds": round(seconds, 3)}))  # fmt: skip
    else:
        click.echo(f"wrote {out_path} ({t} frames of {h}x{w}, {steps} steps, seed {seed}) in {seconds:.1f} s")


if __name__ == "__main__":
    main()
