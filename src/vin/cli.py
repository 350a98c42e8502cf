"""The `vin` command line: train, generate, eval, report, bench.

Every user error is one line on stderr and exit code 2; Ctrl-C exits with 130 and SIGTERM with 143,
quietly, and neither leaves a partial file. Only click and the torch-free option lists are imported
here: torch, diffusers and the model load inside the commands that use them (`vin --help` is instant).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import click

from .errors import VinError
from .generation.options import FUSION_SCHEDULES, GLOBAL_TOKENS, STRATEGIES


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _terminate(signum: int, frame) -> None:
    """SIGTERM unwinds like Ctrl-C: atomic writes remove their temporary files on the way out."""
    raise SystemExit(128 + signum)


class _Group(click.Group):
    """Turns usage errors, VinError and Ctrl-C into one line (or none) and an exit code; SIGTERM exits cleanly."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        previous = _install(signal.SIGTERM, _terminate)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as err:
            click.echo(err.format_message())
            sys.exit(0)
        except click.UsageError as err:
            where = f" (see {err.ctx.command_path} --help)" if err.ctx is not None else ""
            _fail(" ".join(err.format_message().split()) + where)
        except click.ClickException as err:
            _fail(" ".join(err.format_message().split()))
        except VinError as err:
            _fail(str(err))
        except (click.Abort, KeyboardInterrupt):
            sys.exit(130)
        finally:
            _install(signal.SIGTERM, previous)
        sys.exit(code if isinstance(code, int) else 0)


def _install(signum: int, handler):
    """signal.signal where it is allowed (the main thread); returns the handler it replaced."""
    if handler is None:
        return None
    try:
        return signal.signal(signum, handler)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        return None


@click.group(cls=_Group)
@click.version_option(package_name="vin")
def main() -> None:
    """vin: long videos from a video DiT, chunk-parallel with a Video Interface Network."""


def _flags(*options):
    """A decorator applying click options in the order given: flags declared once, shared by commands."""

    def apply(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


CHECKPOINT_FLAGS = _flags(
    click.option("--checkpoint", type=click.Path(), default=None,
                 help="Checkpoint directory, or a shipped one: default (the VIN model), full (full attention) [default: default]."),
    click.option("--autoencoder", type=click.Path(), default=None,
                 help="Latent-space models: the autoencoder folder to decode with [default: the one recorded at training]."),
)  # fmt: skip
SAMPLING_FLAGS = _flags(
    click.option("--guidance", type=float, default=1.0, show_default=True, help="Classifier-free guidance scale."),
    click.option("--fusion-schedule", type=click.Choice(FUSION_SCHEDULES), default="early", show_default=True,
                 help="vin: which steps blend the frames two windows share."),
    click.option("--fusion-fraction", type=float, default=0.4, show_default=True,
                 help="vin: fraction of the steps that fuse (the paper's 20 of 50 is 0.4)."),
    click.option("--global-tokens", type=click.Choice(GLOBAL_TOKENS), default="global", show_default=True,
                 help="vin: global (the method), chunk (each chunk's VIN reads only itself: the no-global-tokens ablation), none."),
    click.option("--chunk-frames", type=int, default=None, help="Frames per chunk or window [default: the model's]."),
    click.option("--context-frames", type=int, default=None, help="Local context K [default: the model's]."),
    click.option("--keyframe-stride", type=int, default=None, help="Keyframe stride s [default: the model's]."),
)  # fmt: skip
RUN_FLAGS = _flags(
    click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N."),
    click.option("--threads", type=int, default=None, help="CPU threads, at most the machine's [default: torch's]."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
)  # fmt: skip


def _sampling(guidance, fusion_schedule, fusion_fraction, global_tokens, chunk_frames, context_frames, keyframe_stride) -> dict:
    """The SAMPLING_FLAGS as generation options (`vin.generation.options.GenerationOptions` fields)."""
    return dict(guidance=guidance, fusion_schedule=fusion_schedule, fusion_fraction=fusion_fraction, global_tokens=global_tokens,
                chunk_frames=chunk_frames, context_frames=context_frames, keyframe_stride=keyframe_stride)  # fmt: skip


def _setup_run(device: str, threads: int | None):
    """Checks --device and --threads before anything is loaded; returns the torch device."""
    from .devices import check_threads, resolve_device

    check_threads(threads)
    resolved = resolve_device(device, allow_auto=False)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return resolved


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
    if summary.get("stopped_by"):
        click.echo(f"stopped by {summary['stopped_by']} at step {summary['steps']} of {summary['of_steps']}, saved; "
                   f"continue with train.resume=auto; checkpoint in {out}")  # fmt: skip
    elif summary["stopped_early"]:
        click.echo(f"stopped at step {summary['steps']} of {summary['of_steps']} (train.stop_at); "
                   f"continue with train.resume=auto; checkpoint in {out}")  # fmt: skip
    else:
        click.echo(f"trained {summary['steps']} steps in {summary['train_seconds']} s, "
                   f"final loss {summary['final_loss_avg50']:.4f}; checkpoint in {out}")  # fmt: skip


@main.command()
@CHECKPOINT_FLAGS
@click.option("--strategy", type=click.Choice(STRATEGIES), default="vin", show_default=True, help="How to make a long video.")
@click.option("--frames", type=int, default=256, show_default=True, help="Video length; a multiple of the chunk size.")
@click.option("--steps", type=int, default=25, show_default=True, help="Denoising steps.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise, in [0, 2**63 - 1].")
@click.option("--out", "out", type=click.Path(), required=True, help="Output file: .mp4, .gif or .npy (raw frames).")
@click.option("--label", type=int, default=None, help="Class label, for class-conditional models.")
@click.option("--prompt-embeds", type=click.Path(), default=None,
              help="Text models (a Wan backbone): a .safetensors holding the prompt's token embeddings (L, D).")
@click.option("--negative-embeds", type=click.Path(), default=None,
              help="With --guidance: the negative prompt's token embeddings, which guidance steers away from.")
@SAMPLING_FLAGS
@click.option("--queue", type=int, default=4, show_default=True, help="fifo: chunks in flight at once (diagonal denoising).")
@click.option("--overlap-frames", type=int, default=None, help="overlap/freenoise: frames neighbouring windows share [F/2].")
@click.option("--cutoff", type=float, default=0.25, show_default=True,
              help="spectral: fraction of the temporal frequency band taken from global attention.")
@click.option("--no-position-interpolation", is_flag=True, help="full/spectral: keep raw positions past the trained window.")
@click.option("--fps", type=int, default=16, show_default=True, help="Frames per second of the mp4 or gif, in [1, 240].")
@click.option("--upscale", type=int, default=1, show_default=True, help="Enlarge pixels N times in mp4/gif, for viewing.")
@RUN_FLAGS
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of a sentence.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Spread the chunks over N processes (launches torchrun; vin strategy only).")
@click.option("--timeout", "timeout_s", type=click.IntRange(min=1), default=300, show_default=True,
              help="Seconds a rank waits on the others before giving up (several processes only).")
def generate(checkpoint, autoencoder, strategy, frames, steps, seed, out, label, prompt_embeds, negative_embeds, guidance, fusion_schedule,
             fusion_fraction, global_tokens, chunk_frames, context_frames, keyframe_stride, queue, overlap_frames, cutoff,
             no_position_interpolation, fps, upscale, device, threads, quiet, as_json, nproc, timeout_s) -> None:  # fmt: skip
    """Generate a long video (chunk-parallel with the VIN, or a baseline) and write it atomically to --out."""
    from .checkpoint import checkpoint_path
    from .generation.options import make_options
    from .videos import check_output_path, check_video_settings

    out_path = check_output_path(out)
    check_video_settings(fps, upscale)
    options = dict(label=label, queue=queue, overlap_frames=overlap_frames, cutoff=cutoff,
                   position_interpolation=not no_position_interpolation,
                   **_sampling(guidance, fusion_schedule, fusion_fraction, global_tokens, chunk_frames, context_frames, keyframe_stride))  # fmt: skip
    request = make_options(frames, steps, seed, progress=not quiet, **options)  # checked once, before anything loads
    ckpt = checkpoint_path(checkpoint)
    torch_device = _setup_run(device, threads)
    prompts = _read_prompts(prompt_embeds, negative_embeds)
    result, world = _sample(ckpt, autoencoder, strategy, request, prompts, torch_device, nproc, timeout_s)
    if result is None:  # not rank 0
        return
    from .videos import write_video

    write_video(result.video.numpy(), out_path, fps=fps, upscale=upscale)
    t, h, w, _ = result.video.shape
    if as_json:
        click.echo(json.dumps({"path": str(out_path), "strategy": strategy, "frames": t, "height": h, "width": w,
                               "steps": steps, "seed": seed, "checkpoint": str(ckpt), "model_calls": result.model_calls,
                               "window_calls": result.window_calls, "seconds": round(result.seconds, 3),
                               "ranks": world}))  # fmt: skip
    else:
        ranks = f", {world} ranks" if world > 1 else ""
        click.echo(f"wrote {out_path} ({t} frames of {h}x{w}, {strategy}, {steps} steps, seed {seed}, "
                   f"{result.model_calls} model calls{ranks}) in {result.seconds:.1f} s")  # fmt: skip


def _read_prompts(prompt_embeds: str | None, negative_embeds: str | None) -> dict:
    """--prompt-embeds / --negative-embeds as vin.generate's prompt_embeds / negative_prompt_embeds (read, not yet fitted)."""
    if prompt_embeds is None and negative_embeds is None:
        return {}
    from .generation.api import read_prompt_embeds

    read = {"prompt_embeds": (prompt_embeds, "--prompt-embeds"), "negative_prompt_embeds": (negative_embeds, "--negative-embeds")}
    return {key: read_prompt_embeds(path, flag) for key, (path, flag) in read.items() if path is not None}


def _sample(ckpt, autoencoder, strategy, request, prompts: dict, device, nproc, timeout_s):
    """Loads the model and samples, in this process or (--nproc > 1) re-run under torchrun; (result, ranks).
    `request`: the checked GenerationOptions; `prompts`: the prompt embeddings (prompt_embeds, negative_prompt_embeds) if any."""
    import torch

    from .checkpoint import load_model
    from .generation.api import check_prompts, check_request, generate_from
    from .parallel import init_from_env, launched_by_torchrun, shutdown

    prompt, negative = prompts.get("prompt_embeds"), prompts.get("negative_prompt_embeds")
    if nproc > 1 and not launched_by_torchrun():  # check everything here, then run again under torchrun
        model = load_model(ckpt, autoencoder=autoencoder)
        check_prompts(model, prompt, negative)
        check_request(model, strategy, request, nproc, prompt is not None)
        _relaunch_with_torchrun(nproc)
    group = init_from_env(str(device), timeout_s)
    try:
        model = load_model(ckpt, group.device if group.distributed else device, autoencoder)
        result = generate_from(model, strategy, request, group, prompt, negative)
        return result, group.world
    except torch.distributed.DistError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VinError(f"rank {group.rank}: communication with the other ranks failed ({first_line}); "
                       "another rank probably failed first, see its message") from None  # fmt: skip
    finally:
        shutdown()


VIDEO_FILES = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".gif", ".npy")


@main.command("eval")
@click.argument("videos", nargs=-1, type=click.Path())
@CHECKPOINT_FLAGS
@click.option("--full-checkpoint", type=click.Path(), default=None,
              help="With --checkpoint: sample the full strategy with this full-attention model ('full' for the shipped "
                   "one, trained on whole clips) instead of the chunked model.")
@click.option("--strategies", default="data,vin,full,autoregressive,independent,overlap,freenoise,spectral", show_default=True,
              help="With --checkpoint: comma-separated strategies, with settings as in vin bench (vin:k8, "
                   "vin:global_tokens=chunk); 'data' = real procedural videos, for reference.")
@click.option("--frames", "frame_list", default="64,128,256,512", show_default=True, help="With --checkpoint: lengths.")
@click.option("--seeds", default="0,1,2,3", show_default=True, help="With --checkpoint: seeds (held out: below 2**20).")
@click.option("--steps", type=int, default=25, show_default=True, help="With --checkpoint: denoising steps.")
@SAMPLING_FLAGS
@click.option("--features", default="efficientnet-lite0", show_default=True,
              help="Feature model for consistency: efficientnet-lite0, pixels, or export:PATH (a torch.export-ed local DINO/CLIP).")
@click.option("--feature-size", type=int, default=224, show_default=True,
              help="Frames are resized to this square size for the feature model (VBench: 224; 112 is 4x faster).")
@click.option("--flow", "flow_method", type=click.Choice(["dis", "farneback"]), default="dis", show_default=True,
              help="OpenCV optical flow.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True, max=240), default=16.0, show_default=True,
              help="Frame rate (dynamic degree samples ~8 fps).")
@click.option("--procedural/--no-procedural", default=None,
              help="Ground-truth checks of the procedural domain [default: on with --checkpoint, off for files].")
@click.option("--json", "json_out", type=click.Path(), default=None, help="Write every figure as JSON (schema vin.eval/1).")
@click.option("--markdown", "md_out", type=click.Path(), default=None, help="Write the table as markdown.")
@click.option("--plot", "plot_out", type=click.Path(), default=None, help="Write metric-vs-length plots (PNG).")
@click.option("--save-videos", type=click.Path(file_okay=False), default=None, help="With --checkpoint: keep the videos (.npy).")
@RUN_FLAGS
def evaluate(videos, checkpoint, autoencoder, full_checkpoint, strategies, frame_list, seeds, steps, guidance, fusion_schedule,
             fusion_fraction, global_tokens, chunk_frames, context_frames, keyframe_stride, features, feature_size, flow_method,
             fps, procedural, json_out, md_out, plot_out, save_videos, device, threads, quiet) -> None:  # fmt: skip
    """Measure videos: MAWE, scene cuts, consistency, dynamic degree, flicker, seams, ground truth, FLOPs.

    Either VIDEOS (files or folders of .mp4/.webm/.avi/.mov/.mkv/.gif/.npy), or --checkpoint to generate
    every strategy x length x seed and evaluate them. Prints a markdown table; --json/--markdown/--plot save.
    With files, --chunk-frames is the chunk length of the boundary and drift figures [default: 16].
    """
    from tqdm import tqdm

    if bool(videos) == bool(checkpoint):
        raise VinError("give either video files/folders or --checkpoint (to generate and evaluate), not both or neither")
    if autoencoder and not checkpoint:
        raise VinError("--autoencoder decodes a latent-space checkpoint's videos: use it with --checkpoint")
    if full_checkpoint and not checkpoint:
        raise VinError("--full-checkpoint samples the full strategy when generating: use it with --checkpoint")
    if feature_size < 32:
        raise VinError(f"--feature-size must be at least 32, got {feature_size}")
    for path, suffix in ((json_out, ".json"), (md_out, ".md"), (plot_out, ".png")):
        if path is not None:
            _check_report_path(Path(path), suffix)
    if save_videos is not None and not Path(save_videos).is_dir():
        raise VinError(f"--save-videos folder {save_videos} does not exist; create it first")
    torch_device = _setup_run(device, threads)
    from .checkpoint import checkpoint_path, load_model
    from .metrics.evaluate import evaluate_video
    from .metrics.features import FeatureExtractor
    from .metrics.report import markdown_table, plot, report_json, summarize, write_json, write_text

    if checkpoint:
        from .metrics.suite import check_suite, run_suite, training_data_config

        ckpt = checkpoint_path(checkpoint)
        model = load_model(ckpt, torch_device, autoencoder)
        full_model = load_model(checkpoint_path(full_checkpoint), torch_device) if full_checkpoint else None
        if full_model is not None and full_model.config.full_frames == 0:
            raise VinError(f"--full-checkpoint {full_checkpoint} is not a full-attention model (its model.full_frames is 0)")
        names = [s.strip() for s in strategies.split(",") if s.strip()]
        lengths, seed_list = _int_list(frame_list, "--frames"), _int_list(seeds, "--seeds")
        options = _sampling(guidance, fusion_schedule, fusion_fraction, global_tokens, chunk_frames, context_frames, keyframe_stride)
        check_suite(model, names, lengths, seed_list, steps, full_model, **options)
        extractor = FeatureExtractor(features, image_size=feature_size)
        rows = run_suite(model, names, lengths, seed_list, steps, extractor, fps=fps, flow_method=flow_method,
                         procedural=True if procedural is None else procedural, data_config=training_data_config(ckpt),
                         save_videos=Path(save_videos) if save_videos else None, progress=not quiet,
                         full_model=full_model, **options)  # fmt: skip
        title = f"{checkpoint}: {steps} steps, seeds {seeds}" + (f"; full from {full_checkpoint}" if full_model else "")
    else:
        from .videos import read_video

        files = _video_files(videos)
        extractor = FeatureExtractor(features, image_size=feature_size)
        rows, skipped = [], []
        for f in tqdm(files, desc="eval", unit="video", disable=quiet or len(files) < 2):
            try:  # one unreadable file must not end a long evaluation: it is reported and skipped
                rows.append(evaluate_video(read_video(f), extractor, 16 if chunk_frames is None else chunk_frames, video=str(f), fps=fps,
                                           flow_method=flow_method, procedural=bool(procedural)))  # fmt: skip
            except VinError as err:
                skipped.append(f)
                reason = str(err).removeprefix(f"{f}: ")
                click.echo(f"warning: skipped {f}: {reason}", err=True)
        if not rows:
            raise VinError(f"none of the {len(files)} videos could be evaluated (see the warnings above)")
        title = f"{len(rows)} video files" + (f" ({len(skipped)} skipped)" if skipped else "")
    summary = summarize(rows)
    table = markdown_table(summary, extractor.name)
    if json_out:
        write_json(report_json(rows, extractor.name, flow_method), json_out)
    if md_out:
        write_text(f"# vin eval: {title}\n\n{table}", md_out)
    if plot_out:
        plot(summary, plot_out, title=title)
    click.echo(table)


@main.command("report")
@click.argument("reports", nargs=-1, type=click.Path())
@click.option("--json", "json_out", type=click.Path(), default=None, help="Write the combined report (schema vin.eval/1).")
@click.option("--markdown", "md_out", type=click.Path(), default=None, help="Write the table as markdown.")
@click.option("--plot", "plot_out", type=click.Path(), default=None, help="Write metric-vs-length plots (PNG).")
@click.option("--plot-metrics", default="", help="Comma-separated metrics to plot [default: the six of vin eval's plot].")
@click.option("--table-metrics", default="", help="Comma-separated metrics for the table's columns [default: vin eval's].")
@click.option("--frames", "frame_list", default="", help="Only these lengths (comma-separated) [default: all].")
@click.option("--title", default="", help="Title of the markdown table and the plot.")
def report(reports, json_out, md_out, plot_out, plot_metrics, table_metrics, frame_list, title) -> None:
    """Combine `vin eval --json` reports (parts of one evaluation run in parallel) into one table and plot."""
    from .metrics.evaluate import METRICS
    from .metrics.report import (
        PLOT_METRICS, TABLE_METRICS, load_reports, markdown_table, plot, report_json, summarize, write_json, write_text,
    )  # fmt: skip

    def metric_list(text: str, flag: str, default: tuple[str, ...]) -> tuple[str, ...]:
        metrics = tuple(m.strip() for m in text.split(",") if m.strip()) or default
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise VinError(f"{flag}: unknown metric {unknown[0]!r}; known: {', '.join(METRICS)}")
        return metrics

    metrics = metric_list(plot_metrics, "--plot-metrics", PLOT_METRICS)
    columns = metric_list(table_metrics, "--table-metrics", TABLE_METRICS)
    for path, suffix in ((json_out, ".json"), (md_out, ".md"), (plot_out, ".png")):
        if path is not None:
            _check_report_path(Path(path), suffix)
    rows, feature_model, flow_method = load_reports(list(reports))
    if frame_list:
        lengths = set(_int_list(frame_list, "--frames"))
        rows = [r for r in rows if r.frames in lengths]
        if not rows:
            raise VinError(f"the reports hold no videos of {frame_list} frames")
    summary = summarize(rows)
    table = markdown_table(summary, feature_model, columns)
    if json_out:
        write_json(report_json(rows, feature_model, flow_method), json_out)
    if md_out:
        write_text((f"# {title}\n\n" if title else "") + table, md_out)
    if plot_out:
        plot(summary, plot_out, metrics, title=title)
    click.echo(table)


def _check_report_path(path: Path, suffix: str) -> None:
    if path.suffix.lower() != suffix:
        raise VinError(f"{path} should end in {suffix}")
    if not path.parent.is_dir():
        raise VinError(f"output folder {path.parent} does not exist; create it first (mkdir -p {path.parent})")
    if path.is_dir():
        raise VinError(f"{path} is a directory; give a file name")


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise VinError(f"{flag} takes comma-separated integers, got {text!r}") from None
    if not values:
        raise VinError(f"{flag} is empty")
    return values


def _video_files(paths: tuple[str, ...]) -> list[Path]:
    """The files named, and the video files inside the folders named (sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_FILES)
            if not found:
                raise VinError(f"folder {p} holds no video files ({', '.join(VIDEO_FILES)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise VinError(f"video {p} does not exist")
    return files


@main.command("demo")
@CHECKPOINT_FLAGS
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port of the page.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on: 127.0.0.1 is this machine only; 0.0.0.0 serves your network.")
@click.option("--votes", type=click.Path(), default="vin-votes.sqlite", show_default=True,
              help="SQLite file of the user study's votes (created if missing; one row per vote).")
@click.option("--study", type=click.Path(), default="vin-study", show_default=True, help="Folder of the study's videos.")
@click.option("--study-strategies", default="vin,autoregressive", show_default=True,
              help="Comma-separated strategies the study compares in pairs.")
@click.option("--study-seeds", default="0,1,2,3", show_default=True, help="Comma-separated seeds of the study's videos.")
@click.option("--study-frames", type=int, default=None, help="Length of the study's videos [default: 16 chunks].")
@click.option("--study-steps", type=int, default=25, show_default=True, help="Denoising steps of the study's videos.")
@click.option("--prepare", is_flag=True, help="Make the study's missing videos and exit (then raters never wait).")
@click.option("--features", default="efficientnet-lite0", show_default=True,
              help="Feature model of the consistency figures: efficientnet-lite0, pixels or export:PATH (as vin eval).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--threads", type=int, default=None, help="CPU threads, at most the machine's [default: torch's].")
def demo(checkpoint, autoencoder, port, host, votes, study, study_strategies, study_seeds, study_frames, study_steps,
         prepare, features, device, threads) -> None:  # fmt: skip
    """A web page (gradio): generate and compare strategies side by side, and run the pairwise user study.

    Needs the optional extra: pip install -e ".[demo]". Local only by default (--host 127.0.0.1).
    """
    from .demo.launch import DemoSettings, run_demo

    strategies = tuple(s.strip() for s in study_strategies.split(",") if s.strip())
    seeds = tuple(_int_list(study_seeds, "--study-seeds"))
    torch_device = _setup_run(device, threads)
    run_demo(DemoSettings(checkpoint=checkpoint, autoencoder=autoencoder, host=host, port=port, votes=votes, study=study,
                          study_strategies=strategies, study_seeds=seeds, study_frames=study_frames, study_steps=study_steps,
                          features=features, device=str(torch_device), prepare=prepare), echo=click.echo)  # fmt: skip


@main.group()
def bench() -> None:
    """What the strategies cost: FLOPs (counted on the meta device) and wall time, side by side.

    Strategies are specs such as vin, full, vin:k12, vin:shared:k8 or full:factorised
    (settings: kN, shared, recompute, 3d, factorised, key=value; see the README).
    """


def _bench_options(fn):
    """Options both bench commands share."""
    options = [
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
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def _bench_setup(config, overrides, strategies, frames, json_out, md_out, plot_out):
    from .bench import BenchSetup, parse_frames, parse_strategies
    from .bench.report import PLOT_SUFFIXES, check_output
    from .config import load_config

    for path, suffixes in ((json_out, (".json",)), (md_out, (".md",)), (plot_out, PLOT_SUFFIXES)):
        if path:
            check_output(path, suffixes)
    setup = BenchSetup(load_config(config, overrides))
    specs, lengths = parse_strategies(strategies), parse_frames(frames)
    for n in lengths:
        setup.latent_frames(n)  # a length the autoencoder cannot make fails here, before any work
    return setup, specs, lengths


def _bench_outputs(rows, markdown: str, json_out, md_out, plot_out, plot) -> None:
    from .bench.report import write_json, write_text

    click.echo(markdown)
    if json_out:
        write_json(rows, json_out)
    if md_out:
        write_text(markdown, md_out)
    if plot_out:
        plot(rows, plot_out)


@bench.command("flops")
@_bench_options
@click.option("--steps", type=int, default=50, show_default=True, help="Denoising steps of a whole video.")
def bench_flops(config, overrides, strategies, frames, context_frames, json_out, md_out, plot_out, steps) -> None:
    """FLOPs of one denoising step and of a whole video, per strategy and length (meta device: no memory)."""
    from .bench import flops_table
    from .bench.report import flops_markdown, plot_flops

    if steps < 1:
        raise VinError(f"--steps must be at least 1, got {steps}")
    setup, specs, lengths = _bench_setup(config, overrides, strategies, frames, json_out, md_out, plot_out)
    rows = flops_table(setup, specs, lengths, steps, context_frames)
    _bench_outputs(rows, flops_markdown(rows), json_out, md_out, plot_out, lambda r, p: plot_flops(r, p, f"({Path(config).stem})"))


@bench.command("speed")
@_bench_options
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed steps before timing each row.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Timed steps per row (the median is reported).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the DiT blocks (compilation happens in the warm-up).")
@click.option("--no-memory", is_flag=True, help="Skip the peak-memory measurement.")
@click.option("--threads", type=int, default=None, help="CPU threads, at most the machine's [default: torch's].")
def bench_speed(config, overrides, strategies, frames, context_frames, json_out, md_out, plot_out, device, dtype, warmup,
                repeats, compile_, no_memory, threads) -> None:  # fmt: skip
    """Median wall time of one denoising step per strategy and length, side by side, with peak memory."""
    from .bench import speed_table
    from .bench.report import plot_speed, speed_markdown
    from .devices import check_threads

    if check_threads(threads) is not None:
        import torch

        torch.set_num_threads(threads)
    setup, specs, lengths = _bench_setup(config, overrides, strategies, frames, json_out, md_out, plot_out)
    rows = speed_table(setup, specs, lengths, device, dtype, warmup, repeats, compile_, not no_memory, context_frames,
                       progress=lambda line: click.echo(line, err=True))  # fmt: skip
    title = f"({Path(config).stem}, {rows[0].device}, {dtype})"
    _bench_outputs(rows, speed_markdown(rows), json_out, md_out, plot_out, lambda r, p: plot_speed(r, p, title))


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
