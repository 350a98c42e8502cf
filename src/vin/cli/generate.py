"""`vin generate`: one long video from a checkpoint, written atomically to --out.

The flags become one `GenerationOptions` (made, and so checked, once, before anything loads), which goes
to `vin.generation.api.generate_from` as it is; --nproc > 1 re-runs the command under torchrun.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..devices import DTYPES
from ..errors import VinError
from ..generation.options import DEFAULTS, INIT_MODES, STRATEGIES, GenerationOptions
from .flags import CHECKPOINT_FLAGS, RUN_FLAGS, SAMPLING_FLAGS, RunFlags, SamplingFlags, int_list


if TYPE_CHECKING:
    import torch

    from ..generation.api import Generation


@click.command()
@CHECKPOINT_FLAGS
@click.option("--strategy", type=click.Choice(STRATEGIES), default="vin", show_default=True, help="How to make a long video.")
@click.option("--frames", type=int, default=256, show_default=True,
              help="Video length in video frames; the model's frames fill whole chunks (Wan2.1: 4k + 1 frames, 20 per chunk).")
@click.option("--steps", type=int, default=25, show_default=True, help="Denoising steps.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise, in [0, 2**63 - 1].")
@click.option("--out", "out", type=click.Path(), required=True, help="Output file: .mp4, .gif or .npy (raw frames).")
@click.option("--height", type=int, default=None, help="Frame height in pixels [default: the model's].")
@click.option("--width", type=int, default=None, help="Frame width in pixels, e.g. 832 with --height 480 [default: the model's].")
@click.option("--label", default=None,
              help="Class-conditional models: a class label, or one per chunk (e.g. 1,1,7,7: the class changes at chunk 2).")
@click.option("--init-video", type=click.Path(), default=None,
              help="Continue this video (.mp4, .gif, .npy): its first frames start the output and the rest is generated.")
@click.option("--init-frames", type=int, default=None,
              help="With --init-video: how many of its frames to keep (1: image-to-video) [default: all].")
@click.option("--init-guidance", type=float, default=DEFAULTS["init_guidance"], show_default=True,
              help="With --init-video: reconstruction guidance towards the given frames (0: replacement alone; a backward "
                   "pass per step).")
@click.option("--init-mode", type=click.Choice(INIT_MODES), default=DEFAULTS["init_mode"], show_default=True,
              help="With --init-video and vin: noised (the given frames replaced at each step's noise level) or clean "
                   "(wholly given chunks at time 0, for a model trained with train.init_prob).")
@click.option("--prompt-embeds", type=click.Path(), multiple=True,
              help="Text models (a Wan backbone): a .safetensors holding the prompt's token embeddings (L, D); "
                   "repeat it once per chunk for a prompt per chunk.")
@click.option("--negative-embeds", type=click.Path(), default=None,
              help="With --guidance: the negative prompt's token embeddings, which guidance steers away from.")
@click.option("--prompt", multiple=True,
              help="A model on a pretrained pipeline folder (Wan2.1): the prompt as text, encoded by the folder's text "
                   "encoder; repeat it once per chunk for a prompt per chunk.")
@click.option("--prompt-file", type=click.Path(), default=None,
              help="Prompt travel: a text file of `CHUNK: prompt` lines, each prompt from that chunk on.")
@click.option("--negative-prompt", default=None,
              help="With --guidance: the negative prompt as text [default with guidance: the empty prompt, as WanPipeline].")
@click.option("--backbone", type=click.Path(), default=None,
              help="A run on a pretrained backbone: the backbone's folder, if it is not where the run recorded it.")
@click.option("--dtype", type=click.Choice(sorted(DTYPES)), default=None,
              help="A pretrained backbone's dtype, whatever it was saved in [default: bf16 on CUDA, fp32 on the CPU].")
@SAMPLING_FLAGS
@click.option("--queue", type=int, default=4, show_default=True, help="fifo: chunks in flight at once (diagonal denoising).")
@click.option("--overlap-frames", type=int, default=None, help="overlap/freenoise: frames neighbouring windows share [F/2].")
@click.option("--window-batch", type=int, default=DEFAULTS["window_batch"], show_default=True,
              help="vin: the chunks' windows one DiT call runs; fewer: less memory, the same video.")
@click.option("--cutoff", type=float, default=0.25, show_default=True,
              help="spectral: fraction of the temporal frequency band taken from global attention.")
@click.option("--no-position-interpolation", is_flag=True, help="full/spectral: keep raw positions past the trained window.")
@click.option("--fps", type=int, default=16, show_default=True, help="Frames per second of the mp4 or gif, in [1, 240].")
@click.option("--upscale", type=int, default=1, show_default=True, help="Enlarge pixels N times in mp4/gif, for viewing.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the DiT blocks: faster steps after a compilation of tens of seconds (pays for long videos).")
@RUN_FLAGS
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of a sentence.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Spread the chunks over N processes (launches torchrun; vin strategy only).")
@click.option("--timeout", "timeout_s", type=click.IntRange(min=1), default=300, show_default=True,
              help="Seconds a rank waits on the others before giving up (several processes only).")
def generate(checkpoint: str | None, autoencoder: str | None, strategy: str, frames: int, steps: int, seed: int, out: str,
             height: int | None, width: int | None, label: str | None, init_video: str | None, init_frames: int | None,
             init_guidance: float, init_mode: str,
             prompt_embeds: tuple[str, ...], negative_embeds: str | None, prompt: tuple[str, ...], prompt_file: str | None,
             negative_prompt: str | None, backbone: str | None, dtype: str | None, sampling: SamplingFlags, queue: int,
             overlap_frames: int | None, window_batch: int, cutoff: float, no_position_interpolation: bool, fps: int, upscale: int,
             compile_: bool, run: RunFlags, as_json: bool, nproc: int, timeout_s: int) -> None:  # fmt: skip
    """Generate a long video (chunk-parallel with the VIN, or a baseline) and write it atomically to --out."""
    from ..checkpoint import checkpoint_path
    from ..videos import check_output_path, check_video_settings

    out_path = check_output_path(out)
    check_video_settings(fps, upscale)
    labels = tuple(int_list(label, "--label")) if label is not None else None
    options = sampling.options(frames, steps, seed, label=labels, queue=queue, overlap_frames=overlap_frames, window_batch=window_batch,
                               cutoff=cutoff,
                               height=height, width=width, init_frames=init_frames, init_guidance=init_guidance,
                               init_mode=init_mode,
                               position_interpolation=not no_position_interpolation, progress=not run.quiet)  # fmt: skip
    ckpt = checkpoint_path(checkpoint)
    torch_device = run.setup()
    prompts = _read_prompts(prompt_embeds, negative_embeds, prompt, prompt_file, negative_prompt, options.guidance)
    video = _read_init_video(options, init_video, nproc)
    where = Where(ckpt, autoencoder, backbone, dtype, torch_device, compile_)
    result, world = _sample(where, strategy, options, prompts, nproc, timeout_s, video)
    if result is None:  # not rank 0
        return
    from ..videos import write_video

    write_video(result.video.numpy(), out_path, fps=fps, upscale=upscale)
    t, h, w, _ = result.video.shape
    if as_json:
        click.echo(json.dumps({"path": str(out_path), "strategy": strategy, "frames": t, "height": h, "width": w,
                               "steps": steps, "seed": seed, "checkpoint": str(ckpt), "model_calls": result.model_calls,
                               "window_calls": result.window_calls, "seconds": round(result.seconds, 3),
                               "ranks": world, "given_frames": result.given_frames}))  # fmt: skip
    else:
        ranks = f", {world} ranks" if world > 1 else ""
        given = f", the first {result.given_frames} given" if result.given_frames else ""
        click.echo(f"wrote {out_path} ({t} frames of {h}x{w}{given}, {strategy}, {steps} steps, seed {seed}, "
                   f"{result.model_calls} model calls{ranks}) in {result.seconds:.1f} s")  # fmt: skip


@dataclass(frozen=True)
class Prompts:
    """What conditions a text model: embeddings read from files (1, L, D), or text its own encoder encodes; each
    given once, as a list with one per chunk, or (text) as a schedule {first chunk: prompt}."""

    embeds: torch.Tensor | list[torch.Tensor] | None = None
    negative_embeds: torch.Tensor | None = None
    text: str | list[str] | dict[int, str] | None = None
    negative_text: str | None = None


def _read_prompts(prompt_embeds: tuple[str, ...], negative_embeds: str | None, prompt: tuple[str, ...], prompt_file: str | None,
                  negative_prompt: str | None, guidance: float) -> Prompts:  # fmt: skip
    """--prompt-embeds and --negative-embeds read (not yet fitted to the model, but finite, and a negative only
    with guidance), or --prompt / --prompt-file and --negative-prompt checked (alone, a negative with a prompt
    and guidance). A flag given several times gives one prompt per chunk."""
    from ..generation.api import check_negative, check_text, read_prompt_embeds
    from ..generation.conditions import read_prompt_file

    read = [read_prompt_embeds(path, "--prompt-embeds") for path in prompt_embeds]
    embeds = read[0] if len(read) == 1 else (read or None)
    negative = read_prompt_embeds(negative_embeds, "--negative-embeds") if negative_embeds is not None else None
    check_negative(negative, guidance)
    if prompt and prompt_file is not None:
        raise VinError("give the prompt as --prompt or as --prompt-file, not both")
    text = read_prompt_file(prompt_file) if prompt_file is not None else (prompt[0] if len(prompt) == 1 else list(prompt) or None)
    if text is not None or negative_prompt is not None:
        check_text(text, negative_prompt, embeds, negative, guidance)
    return Prompts(embeds, negative, text, negative_prompt)


def _read_init_video(options: GenerationOptions, path: str | None, nproc: int):
    """--init-video's frames (T, H, W, 3) uint8 or None, read and checked before the model loads (fitted to it in
    `generate_from`)."""
    from ..generation.continuation import read_init

    return read_init(options, path, nproc)


@dataclass(frozen=True)
class Where:
    """The model to load and where: the checkpoint, its autoencoder and backbone folders (None: as recorded),
    the backbone's dtype name (None: the kind's default), the device, and whether to compile its blocks."""

    checkpoint: Path
    autoencoder: str | None
    backbone: str | None
    dtype: str | None
    device: torch.device
    compile: bool = False

    def load(self, device: torch.device | None = None):
        from ..checkpoint import load_model
        from ..devices import backbone_dtype

        dtype = backbone_dtype(self.dtype, device or self.device) if self.dtype else None
        model = load_model(self.checkpoint, device or self.device, self.autoencoder, self.backbone, dtype)
        if self.compile and model.device.type != "meta":
            model.compile_blocks()
        return model


def _sample(where: Where, strategy: str, options: GenerationOptions, prompts: Prompts, nproc: int,
            timeout_s: int, video=None) -> tuple[Generation | None, int]:  # fmt: skip
    """Loads the model and samples, in this process or (--nproc > 1) re-run under torchrun; (result, ranks).
    `options`: the request, checked when made; `prompts`: the prompt (embeddings or text), if any."""
    import torch

    from ..generation.api import check_prompts, check_request, generate_from
    from ..generation.conditions import is_schedule
    from ..generation.strategies import model_frames
    from ..parallel import init_from_env, launched_by_torchrun, shutdown

    if nproc > 1 and not launched_by_torchrun():  # check everything here, then run again under torchrun
        if is_schedule(prompts.text) or is_schedule(prompts.embeds):  # (a continuation: refused by read_init)
            raise VinError("a prompt per chunk runs in one process: drop --nproc")
        model = where.load(torch.device("meta"))  # the checks need shapes only: no backbone weights are read here
        check_prompts(model, prompts.embeds, prompts.negative_embeds)
        options = replace(options, frames=model_frames(model, strategy, options))
        check_request(model, strategy, options, nproc, prompts.embeds is not None or prompts.text is not None)
        _relaunch_with_torchrun(nproc)
    group = init_from_env(str(where.device), timeout_s)
    try:
        model = where.load(group.device if group.distributed else where.device)
        options = replace(options, frames=model_frames(model, strategy, options))  # --frames counts video frames
        result = generate_from(model, strategy, options, group, prompts.embeds, prompts.negative_embeds, prompts.text,
                               prompts.negative_text, video)  # fmt: skip
        return result, group.world
    except torch.distributed.DistError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VinError(f"rank {group.rank}: communication with the other ranks failed ({first_line}); "
                       "another rank probably failed first, see its message") from None  # fmt: skip
    finally:
        shutdown()


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
