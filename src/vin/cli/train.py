"""`vin train`: train a model from a YAML config, and say in one line how it went."""

from __future__ import annotations

import json
import os

import click


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(config: str, overrides: tuple[str, ...], quiet: bool) -> None:
    """Train a model from CONFIG (YAML), with optional section.key=value OVERRIDES.

    Example: vin train configs/tiny.yaml train.steps=100 train.out_dir=runs/mine

    On your videos: vin train configs/videos.yaml data.root=path/to/videos (see docs/training.md).
    Continue a stopped or crashed run: the same command with train.resume=auto.
    """
    from ..config import load_config
    from ..train import train as run_training

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
