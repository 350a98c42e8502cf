"""`vin demo`: the web page (gradio) that generates, compares and runs the pairwise user study."""

from __future__ import annotations

import click

from .flags import int_list, setup_run


@click.command("demo")
@click.option("--checkpoint", "checkpoints", type=click.Path(), multiple=True,
              help="A checkpoint the page serves (default, full or a folder); repeat for several, the first is the "
                   "default [default: default].")
@click.option("--autoencoder", type=click.Path(), default=None,
              help="Latent-space models: the first checkpoint's autoencoder folder [default: the one recorded at training].")
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
@click.option("--max-frames", type=int, default=1024, show_default=True, help="The most frames one request may ask for.")
@click.option("--max-steps", type=int, default=100, show_default=True, help="The most steps one request may ask for.")
@click.option("--max-strategies", type=int, default=3, show_default=True,
              help="The most strategies one request may put side by side.")
@click.option("--votes-per-minute", type=int, default=10, show_default=True,
              help="The most votes one client address may cast a minute.")
@click.option("--features", default="efficientnet-lite0", show_default=True,
              help="Feature model of the consistency figures: efficientnet-lite0, pixels or export:PATH (as vin eval).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--threads", type=int, default=None, help="CPU threads, at most the machine's [default: torch's].")
def demo(checkpoints: tuple[str, ...], autoencoder: str | None, port: int, host: str, votes: str, study: str,
         study_strategies: str, study_seeds: str, study_frames: int | None, study_steps: int, prepare: bool, max_frames: int,
         max_steps: int, max_strategies: int, votes_per_minute: int, features: str, device: str,
         threads: int | None) -> None:  # fmt: skip
    """A web page (gradio): generate and compare strategies side by side, and run the pairwise user study.

    Needs the optional extra: pip install -e ".[demo]". Local only by default (--host 127.0.0.1); the page
    serves the --checkpoint folders only (on 127.0.0.1 it also takes a typed folder).
    """
    from ..demo.launch import DemoSettings, run_demo
    from ..demo.limits import Caps

    strategies = tuple(s.strip() for s in study_strategies.split(",") if s.strip())
    seeds = tuple(int_list(study_seeds, "--study-seeds"))
    caps = Caps(max_frames, max_steps, max_strategies).check()
    torch_device = setup_run(device, threads)
    run_demo(DemoSettings(checkpoints=checkpoints, autoencoder=autoencoder, host=host, port=port, votes=votes, study=study,
                          study_strategies=strategies, study_seeds=seeds, study_frames=study_frames, study_steps=study_steps,
                          features=features, device=str(torch_device), prepare=prepare, caps=caps,
                          votes_per_minute=votes_per_minute), echo=click.echo)  # fmt: skip
