"""`vin eval` (measure video files, or generate every strategy x length x seed from a checkpoint and measure
them) and `vin report` (combine `vin eval --json` reports). Both print a markdown table and write the same
three kinds of file (`ReportFiles`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from ..errors import VinError
from .flags import CHECKPOINT_FLAGS, RUN_FLAGS, SAMPLING_FLAGS, RunFlags, SamplingFlags, flag_group, int_list

VIDEO_FILES = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".gif", ".npy")


@dataclass(frozen=True)
class ReportFiles:
    """--json, --markdown and --plot: the files vin eval and vin report write (None: not written)."""

    json_out: str | None
    md_out: str | None
    plot_out: str | None

    def check(self) -> None:
        """Each path has its suffix and an existing folder, checked before any work."""
        for path, suffix in ((self.json_out, ".json"), (self.md_out, ".md"), (self.plot_out, ".png")):
            if path is not None:
                _check_report_path(Path(path), suffix)

    def write(self, rows: list, summary: list[dict], feature_model: str, flow_method: str, markdown: str, title: str,
              metrics: tuple[str, ...]) -> None:  # fmt: skip
        """Writes those asked for: the rows as JSON (schema vin.eval/1), `markdown`, and `metrics` against length."""
        from ..metrics.report import plot, report_json, write_json, write_text

        if self.json_out:
            write_json(report_json(rows, feature_model, flow_method), self.json_out)
        if self.md_out:
            write_text(markdown, self.md_out)
        if self.plot_out:
            plot(summary, self.plot_out, metrics, title=title)


def report_file_flags(json_help: str):
    """--json (with its help text), --markdown and --plot, received as one `ReportFiles` (parameter `files`)."""
    return flag_group(
        "files", ReportFiles,
        click.option("--json", "json_out", type=click.Path(), default=None, help=json_help),
        click.option("--markdown", "md_out", type=click.Path(), default=None, help="Write the table as markdown."),
        click.option("--plot", "plot_out", type=click.Path(), default=None, help="Write metric-vs-length plots (PNG)."),
    )  # fmt: skip


@dataclass(frozen=True)
class SuiteFlags:
    """vin eval --checkpoint: what to generate besides the sampling settings."""

    full_checkpoint: str | None
    strategies: str  # comma-separated specs
    frame_list: str  # comma-separated lengths
    seeds: str  # comma-separated seeds
    steps: int


@dataclass(frozen=True)
class MeasureFlags:
    """How vin eval measures a video."""

    features: str
    feature_size: int
    flow_method: str
    fps: float
    procedural: bool | None  # None: on with --checkpoint, off for files

    def extractor(self):
        """The feature model of the consistency figures (loads it)."""
        from ..metrics.features import FeatureExtractor

        return FeatureExtractor(self.features, image_size=self.feature_size)


@click.command("eval")
@click.argument("videos", nargs=-1, type=click.Path())
@CHECKPOINT_FLAGS
@flag_group(
    "suite", SuiteFlags,
    click.option("--full-checkpoint", type=click.Path(), default=None,
                 help="With --checkpoint: sample the full strategy with this full-attention model ('full' for the shipped "
                      "one, trained on whole clips) instead of the chunked model."),
    click.option("--strategies", default="data,vin,full,autoregressive,independent,overlap,freenoise,spectral", show_default=True,
                 help="With --checkpoint: comma-separated strategies, with settings as in vin bench (vin:k8, "
                      "vin:global_tokens=chunk); 'data' = real procedural videos, for reference."),
    click.option("--frames", "frame_list", default="64,128,256,512", show_default=True, help="With --checkpoint: lengths."),
    click.option("--seeds", default="0,1,2,3", show_default=True, help="With --checkpoint: seeds (held out: below 2**20)."),
    click.option("--steps", type=int, default=25, show_default=True, help="With --checkpoint: denoising steps."),
)  # fmt: skip
@SAMPLING_FLAGS
@flag_group(
    "measure", MeasureFlags,
    click.option("--features", default="efficientnet-lite0", show_default=True,
                 help="Feature model for consistency: efficientnet-lite0, pixels, or export:PATH (a torch.export-ed local DINO/CLIP)."),
    click.option("--feature-size", type=int, default=224, show_default=True,
                 help="Frames are resized to this square size for the feature model (VBench: 224; 112 is 4x faster)."),
    click.option("--flow", "flow_method", type=click.Choice(["dis", "farneback"]), default="dis", show_default=True,
                 help="OpenCV optical flow."),
    click.option("--fps", type=click.FloatRange(min=0, min_open=True, max=240), default=16.0, show_default=True,
                 help="Frame rate (dynamic degree samples ~8 fps)."),
    click.option("--procedural/--no-procedural", default=None,
                 help="Ground-truth checks of the procedural domain [default: on with --checkpoint, off for files]."),
)  # fmt: skip
@report_file_flags("Write every figure as JSON (schema vin.eval/1).")
@click.option("--save-videos", type=click.Path(file_okay=False), default=None, help="With --checkpoint: keep the videos (.npy).")
@RUN_FLAGS
def evaluate(videos: tuple[str, ...], checkpoint: str | None, autoencoder: str | None, suite: SuiteFlags, sampling: SamplingFlags,
             measure: MeasureFlags, files: ReportFiles, save_videos: str | None, run: RunFlags) -> None:  # fmt: skip
    """Measure videos: MAWE, scene cuts, consistency, dynamic degree, flicker, seams, ground truth, FLOPs.

    Either VIDEOS (files or folders of .mp4/.webm/.avi/.mov/.mkv/.gif/.npy), or --checkpoint to generate
    every strategy x length x seed and evaluate them. Prints a markdown table; --json/--markdown/--plot save.
    With files, --chunk-frames is the chunk length of the boundary and drift figures [default: 16].
    """
    _check_eval_flags(videos, checkpoint, autoencoder, suite, measure, files, save_videos)
    torch_device = run.setup()
    from ..metrics.report import PLOT_METRICS, markdown_table, summarize

    if checkpoint:
        rows, feature_model, title = _eval_checkpoint(checkpoint, autoencoder, suite, sampling, measure, save_videos,
                                                      torch_device, run.quiet)  # fmt: skip
    else:
        rows, feature_model, title = _eval_files(videos, sampling.chunk_frames, measure, run.quiet)
    summary = summarize(rows)
    table = markdown_table(summary, feature_model)
    files.write(rows, summary, feature_model, measure.flow_method, f"# vin eval: {title}\n\n{table}", title, PLOT_METRICS)
    click.echo(table)


def _check_eval_flags(videos: tuple[str, ...], checkpoint: str | None, autoencoder: str | None, suite: SuiteFlags,
                      measure: MeasureFlags, files: ReportFiles, save_videos: str | None) -> None:  # fmt: skip
    """vin eval's flags fit together and its output paths can be written, checked before anything loads."""
    if bool(videos) == bool(checkpoint):
        raise VinError("give either video files/folders or --checkpoint (to generate and evaluate), not both or neither")
    if autoencoder and not checkpoint:
        raise VinError("--autoencoder decodes a latent-space checkpoint's videos: use it with --checkpoint")
    if suite.full_checkpoint and not checkpoint:
        raise VinError("--full-checkpoint samples the full strategy when generating: use it with --checkpoint")
    if measure.feature_size < 32:
        raise VinError(f"--feature-size must be at least 32, got {measure.feature_size}")
    files.check()
    if save_videos is not None and not Path(save_videos).is_dir():
        raise VinError(f"--save-videos folder {save_videos} does not exist; create it first")


def _eval_checkpoint(checkpoint: str, autoencoder: str | None, suite: SuiteFlags, sampling: SamplingFlags, measure: MeasureFlags,
                     save_videos: str | None, device, quiet: bool) -> tuple[list, str, str]:  # fmt: skip
    """vin eval --checkpoint: every strategy x length x seed generated and measured; (rows, feature model, title)."""
    from ..checkpoint import checkpoint_path, load_model
    from ..metrics.suite import check_suite, run_suite, training_data_config

    ckpt = checkpoint_path(checkpoint)
    model = load_model(ckpt, device, autoencoder)
    full_model = load_model(checkpoint_path(suite.full_checkpoint), device) if suite.full_checkpoint else None
    if full_model is not None and full_model.config.full_frames == 0:
        raise VinError(f"--full-checkpoint {suite.full_checkpoint} is not a full-attention model (its model.full_frames is 0)")
    names = [s.strip() for s in suite.strategies.split(",") if s.strip()]
    lengths, seed_list = int_list(suite.frame_list, "--frames"), int_list(suite.seeds, "--seeds")
    options = sampling.option_fields()
    check_suite(model, names, lengths, seed_list, suite.steps, full_model, **options)
    extractor = measure.extractor()
    rows = run_suite(model, names, lengths, seed_list, suite.steps, extractor, fps=measure.fps, flow_method=measure.flow_method,
                     procedural=True if measure.procedural is None else measure.procedural, data_config=training_data_config(ckpt),
                     save_videos=Path(save_videos) if save_videos else None, progress=not quiet,
                     full_model=full_model, **options)  # fmt: skip
    full_from = f"; full from {suite.full_checkpoint}" if full_model else ""
    title = f"{checkpoint}: {suite.steps} steps, seeds {suite.seeds}{full_from}"
    return rows, extractor.name, title


def _eval_files(videos: tuple[str, ...], chunk_frames: int | None, measure: MeasureFlags,
                quiet: bool) -> tuple[list, str, str]:  # fmt: skip
    """vin eval VIDEOS: each file measured, an unreadable one reported and skipped; (rows, feature model, title).
    `chunk_frames`: the chunk length of the boundary and drift figures [16]."""
    from tqdm import tqdm

    from ..metrics.evaluate import evaluate_video
    from ..videos import read_video

    files, missing = _video_files(videos)
    if not files:
        first, why = next(iter(missing.items()))
        more = f" (and {len(missing) - 1} more paths)" if len(missing) > 1 else ""
        raise VinError(f"no video to evaluate: {first}: {why}{more}; give video files or folders of them ({', '.join(VIDEO_FILES)})")
    for path, why in missing.items():
        click.echo(f"warning: skipped {path}: {why}", err=True)
    extractor = measure.extractor()
    rows, skipped = [], list(missing)
    for f in tqdm(files, desc="eval", unit="video", disable=quiet or len(files) < 2):
        try:  # one unreadable file must not end a long evaluation: it is reported and skipped
            rows.append(evaluate_video(read_video(f), extractor, 16 if chunk_frames is None else chunk_frames, video=str(f),
                                       fps=measure.fps, flow_method=measure.flow_method, procedural=bool(measure.procedural)))  # fmt: skip
        except VinError as err:
            skipped.append(f)
            reason = str(err).removeprefix(f"{f}: ")
            click.echo(f"warning: skipped {f}: {reason}", err=True)
    if not rows:
        raise VinError(f"none of the {len(files) + len(missing)} videos could be evaluated (see the warnings above)")
    title = f"{len(rows)} video files" + (f" ({len(skipped)} skipped)" if skipped else "")
    return rows, extractor.name, title


@click.command("report")
@click.argument("reports", nargs=-1, type=click.Path())
@report_file_flags("Write the combined report (schema vin.eval/1).")
@click.option("--plot-metrics", default="", help="Comma-separated metrics to plot [default: the six of vin eval's plot].")
@click.option("--table-metrics", default="", help="Comma-separated metrics for the table's columns [default: vin eval's].")
@click.option("--frames", "frame_list", default="", help="Only these lengths (comma-separated) [default: all].")
@click.option("--title", default="", help="Title of the markdown table and the plot.")
def report(reports: tuple[str, ...], files: ReportFiles, plot_metrics: str, table_metrics: str, frame_list: str,
           title: str) -> None:  # fmt: skip
    """Combine `vin eval --json` reports (parts of one evaluation run in parallel) into one table and plot."""
    from ..metrics.report import PLOT_METRICS, TABLE_METRICS, load_reports, markdown_table, summarize

    metrics = _metric_list(plot_metrics, "--plot-metrics", PLOT_METRICS)
    columns = _metric_list(table_metrics, "--table-metrics", TABLE_METRICS)
    files.check()
    rows, feature_model, flow_method = load_reports(list(reports))
    if frame_list:
        lengths = set(int_list(frame_list, "--frames"))
        rows = [r for r in rows if r.frames in lengths]
        if not rows:
            raise VinError(f"the reports hold no videos of {frame_list} frames")
    summary = summarize(rows)
    table = markdown_table(summary, feature_model, columns)
    files.write(rows, summary, feature_model, flow_method, (f"# {title}\n\n" if title else "") + table, title, metrics)
    click.echo(table)


def _metric_list(text: str, flag: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A flag's comma-separated metric names (`default` when empty), each one vin eval measures."""
    from ..metrics.evaluate import METRICS

    metrics = tuple(m.strip() for m in text.split(",") if m.strip()) or default
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise VinError(f"{flag}: unknown metric {unknown[0]!r}; known: {', '.join(METRICS)}")
    return metrics


def _check_report_path(path: Path, suffix: str) -> None:
    """An output file: its suffix, an existing folder, and not a directory."""
    if path.suffix.lower() != suffix:
        raise VinError(f"{path} should end in {suffix}")
    if not path.parent.is_dir():
        raise VinError(f"output folder {path.parent} does not exist; create it first (mkdir -p {path.parent})")
    if path.is_dir():
        raise VinError(f"{path} is a directory; give a file name")


def _video_files(paths: tuple[str, ...]) -> tuple[list[Path], dict[Path, str]]:
    """The files named, and the video files inside the folders named (sorted), each file once; and the paths
    that gave none, with why (skipped with a warning, as an unreadable file is).

    A file found twice, under any name (./a.mp4 and a.mp4, a link, a folder that holds it), is measured once,
    with a warning: the same video twice would count twice in the mean and shrink the spread."""
    files: list[Path] = []
    missing: dict[Path, str] = {}
    seen: dict[tuple[int, int], Path] = {}  # (device, inode) -> the name it was first found under
    for p in map(Path, paths):
        found = _found_in(p)
        if not found:
            missing[p] = f"it holds no video files ({', '.join(VIDEO_FILES)})" if p.is_dir() else "it does not exist"
        for f in found:
            stat = f.stat()
            first = seen.setdefault((stat.st_dev, stat.st_ino), f)
            if first is f:
                files.append(f)
            else:
                click.echo(f"warning: {f} is the same file as {first}; it is measured once", err=True)
    return files, missing


def _found_in(path: Path) -> list[Path]:
    """The video files of a path: itself (a file), those under it (a folder, sorted), or none."""
    if path.is_dir():
        return sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_FILES)
    return [path] if path.is_file() else []
