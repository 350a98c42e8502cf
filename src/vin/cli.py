"""The `vin` command line: train, generate.

Every user error is one line on stderr and exit code 2; no stack traces, no partial files.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from .errors import VinError
from .generation.strategies import FUSION_SCHEDULES, GLOBAL_TOKENS, STRATEGIES


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

    On your videos: vin train configs/videos.yaml data.root=path/to/videos (see the README).
    Continue a stopped or crashed run: the same command with train.resume=auto.
    """
    from .config import load_config
    from .train import train as run_training

    cfg = load_config(config, overrides)
    out = run_training(cfg, progress=not quiet)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # rank 0 reports
    summary = json.loads((out / "summary.json").read_text())
    data = summary.get("data")
    if data and data["skipped"]:
        click.echo(f"skipped {data['skipped']} of {data['videos']} videos (unreadable, corrupt or too short); "
                   f"see {out / 'data_report.json'}")  # fmt: skip
    if summary["stopped_early"]:
        click.echo(f"stopped at step {summary['steps']} of {summary['of_steps']} (train.stop_at); "
                   f"continue with train.resume=auto; checkpoint in {out}")  # fmt: skip
    else:
        click.echo(f"trained {summary['steps']} steps in {summary['train_seconds']} s, "
                   f"final loss {summary['final_loss_avg50']:.4f}; checkpoint in {out}")  # fmt: skip


@main.command()
@click.option("--checkpoint", type=click.Path(), default=None, help="Checkpoint directory [default: the shipped model].")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="vin", show_default=True, help="How to make a long video.")
@click.option("--frames", type=int, default=256, show_default=True, help="Video length; a multiple of the chunk size.")
@click.option("--steps", type=int, default=25, show_default=True, help="Denoising steps.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", type=click.Path(), required=True, help="Output file: .mp4, .gif or .npy (raw frames).")
@click.option("--label", type=int, default=None, help="Class label, for class-conditional models.")
@click.option("--guidance", type=float, default=1.0, show_default=True, help="Classifier-free guidance scale.")
@click.option("--fusion-schedule", "fusion", type=click.Choice(FUSION_SCHEDULES), default="early", show_default=True,
              help="vin: which steps blend the frames two windows share.")
@click.option("--fusion", "fusion_fraction", type=float, default=0.4, show_default=True,
              help="vin: fraction of the steps that fuse (the paper's 20 of 50 is 0.4).")
@click.option("--global-tokens", type=click.Choice(GLOBAL_TOKENS), default="global", show_default=True,
              help="vin: global (the method), chunk (each chunk's VIN reads only itself: the no-global-tokens ablation), none.")
@click.option("--chunk-frames", type=int, default=None, help="Frames per chunk or window [default: the model's].")
@click.option("--context-frames", type=int, default=None, help="Local context K [default: the model's].")
@click.option("--keyframe-stride", type=int, default=None, help="Keyframe stride s [default: the model's].")
@click.option("--overlap-frames", type=int, default=None, help="overlap/freenoise: frames neighbouring windows share [F/2].")
@click.option("--cutoff", type=float, default=0.25, show_default=True,
              help="spectral: fraction of the temporal frequency band taken from global attention.")
@click.option("--no-position-interpolation", is_flag=True, help="full/spectral: keep raw positions past the trained window.")
@click.option("--fps", type=int, default=16, show_default=True)
@click.option("--upscale", type=int, default=1, show_default=True, help="Enlarge pixels N times in mp4/gif, for viewing.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--threads", type=int, default=0, help="CPU threads [default: torch's].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of a sentence.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--nproc", type=int, default=1, show_default=True,
              help="Spread the chunks over N processes (launches torchrun; vin strategy only).")
@click.option("--timeout", "timeout_s", type=int, default=300, show_default=True,
              help="Seconds a rank waits on the others before giving up (several processes only).")
def generate(checkpoint, strategy, frames, steps, seed, out, label, guidance, fusion, fusion_fraction, global_tokens,
             chunk_frames, context_frames, keyframe_stride, overlap_frames, cutoff, no_position_interpolation, fps,
             upscale, device, threads, as_json, quiet, nproc, timeout_s) -> None:  # fmt: skip
    """Generate a long video (chunk-parallel with the VIN, or a baseline) and write it atomically to --out."""
    import torch

    from .generation import check_request, generate as run_generation
    from .io import check_output_path, default_checkpoint, load_model, write_video
    from .parallel import init_from_env, launched_by_torchrun, shutdown

    out_path = check_output_path(out)
    if upscale < 1:
        raise VinError(f"--upscale must be at least 1, got {upscale}")
    if nproc < 1:
        raise VinError(f"--nproc must be at least 1, got {nproc}")
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint()
    options = dict(label=label, guidance=guidance, fusion=fusion, fusion_fraction=fusion_fraction,
                   global_tokens=global_tokens, chunk_frames=chunk_frames, context_frames=context_frames,
                   keyframe_stride=keyframe_stride, overlap_frames=overlap_frames, cutoff=cutoff,
                   position_interpolation=not no_position_interpolation)  # fmt: skip
    if nproc > 1 and not launched_by_torchrun():  # check everything here, then run again under torchrun
        check_request(load_model(ckpt), strategy, frames, steps, seed, nproc, **options)
        _relaunch_with_torchrun(nproc)
    if threads > 0:
        torch.set_num_threads(threads)
    group = init_from_env(device, timeout_s)
    try:
        model = load_model(ckpt, group.device if group.distributed else _device(device))
        check_request(model, strategy, frames, steps, seed, group.world, **options)
        result = run_generation(model, frames, steps, seed, strategy, progress=not quiet, group=group, **options)
    except torch.distributed.DistError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VinError(f"rank {group.rank}: communication with the other ranks failed ({first_line}); "
                       "another rank probably failed first, see its message") from None  # fmt: skip
    finally:
        shutdown()
    if result is None:  # not rank 0
        return
    write_video(result.video.numpy(), out_path, fps=fps, upscale=upscale)
    t, h, w, _ = result.video.shape
    if as_json:
        click.echo(json.dumps({"path": str(out_path), "strategy": strategy, "frames": t, "height": h, "width": w,
                               "steps": steps, "seed": seed, "checkpoint": str(ckpt), "model_calls": result.model_calls,
                               "window_calls": result.window_calls, "seconds": round(result.seconds, 3),
                               "ranks": group.world}))  # fmt: skip
    else:
        ranks = f", {group.world} ranks" if group.distributed else ""
        click.echo(f"wrote {out_path} ({t} frames of {h}x{w}, {strategy}, {steps} steps, seed {seed}, "
                   f"{result.model_calls} model calls{ranks}) in {result.seconds:.1f} s")  # fmt: skip


def _device(name: str):
    from .train import resolve_device

    return resolve_device(name)


def _relaunch_with_torchrun(nproc: int) -> None:
    """Runs this very command again under torchrun with `nproc` processes, and exits with its status."""
    import subprocess

    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "vin", *args]
    sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
