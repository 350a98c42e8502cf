"""`vin demo`: the web page (gradio) that generates, compares and runs the pairwise user study."""

from __future__ import annotations

import click

from .flags import CHECKPOINT_FLAGS, int_list, setup_run


@click.command("demo")
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
def demo(checkpoint: str | None, autoencoder: str | None, port: int, host: str, votes: str, study: str,
         study_strategies: str, study_seeds: str, study_frames: int | None, study_steps: int, prepare: bool, features: str,
         device: str, threads: int | None) -> None:  # fmt: skip
    """A web page (gradio): generate and compare strategies side by side, and run the pairwise user study.

    Needs the optional extra: pip install -e ".[demo]". Local only by default (--host 127.0.0.1).
    """
    from ..demo.launch import DemoSettings, run_demo

    strategies = tuple(s.strip() for s in study_strategies.split(",") if s.strip())
    seeds = tuple(int_list(study_seeds, "--study-seeds"))
    torch_device = setup_run(device, threads)
    run_demo(DemoSettings(checkpoint=checkpoint, autoencoder=autoencoder, host=host, port=port, votes=votes, study=study,
                          study_strategies=strategies, study_seeds=seeds, study_frames=study_frames, study_steps=study_steps,
                          features=features, device=str(torch_device), prepare=prepare), echo=click.echo)  # fmt: skip
