"""`vin.generate`: one long video from a trained model, with any strategy."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..errors import VinError
from ..model.vin import VINModel
from ..parallel import Group, chunk_ranges
from ..videos import to_uint8
from .distributed import run_vin_distributed
from .memory import check_memory
from .options import make_options
from .strategies import Plan, plan, run_strategy


@dataclass
class Generation:
    video: torch.Tensor  # (T, H, W, 3) uint8, decoded to pixels for a latent-space model
    strategy: str
    model_calls: int
    window_calls: int
    seconds: float  # sampling, and decoding for a latent-space model


def check_decodable(model: VINModel) -> None:
    """The model's samples can become an RGB video: pixels, or latents with their autoencoder at hand."""
    if model.latent_decoder is not None:
        model.latent_decoder.check()
    elif model.config.in_channels != 3:
        raise VinError(f"this model makes {model.config.in_channels}-channel latents, not RGB frames, and no autoencoder is "
                       "known to decode them (its folder has no autoencoder.json); give the autoencoder it was trained with: "
                       "--autoencoder DIR (vin generate / vin eval) or vin.load_model(path, autoencoder=DIR)")  # fmt: skip


def check_request(
    model: VINModel, strategy: str, frames: int, steps: int = 25, seed: int = 0, world: int = 1, labelled: bool = False, **options
) -> Plan:
    """Everything that can be wrong with a request, checked before any work starts (raises VinError).

    `world`: the number of ranks that will share the work; `labelled`: a condition comes with the request
    other than `label` (prompt embeddings). Returns the resolved plan.
    """
    if model.config.full_frames > 0 and strategy != "full":
        raise VinError(f"this checkpoint is a full-attention model (trained on whole clips, model.full_frames="
                       f"{model.config.full_frames}): sample it with the full strategy, not {strategy!r}")  # fmt: skip
    o = make_options(frames, steps, seed, **options)
    p = plan(model, strategy, o, labelled=labelled)
    check_decodable(model)
    if world > 1:
        if strategy != "vin":
            raise VinError(f"strategy {strategy!r} runs in one process; only vin shards its chunks across ranks")
        if model.config.context_mode == "shared":
            raise VinError("model.context_mode=shared borrows each chunk's context inside one pass; "
                           "chunk-parallel sampling across ranks needs context_mode=recompute")  # fmt: skip
        chunk_ranges(p.chunks, world)
    check_memory(model, strategy, p, o.guidance, world)
    return p


def generate(
    model: VINModel,
    frames: int,
    steps: int = 25,
    seed: int = 0,
    strategy: str = "vin",
    progress: bool = False,
    group: Group | None = None,
    prompt_embeds: torch.Tensor | None = None,
    negative_prompt_embeds: torch.Tensor | None = None,
    **options,
) -> Generation | None:
    """Generates one video of `frames` frames with `strategy`; the same seed gives the same video.

    `options` are the fields of `GenerationOptions`: label, guidance, chunk_frames, context_frames,
    keyframe_stride, fusion, fusion_fraction, global_tokens, queue, overlap_frames, cutoff, spectral_branch,
    position_interpolation. `prompt_embeds` (1, L, D): a text model's condition (a Wan backbone's UMT5
    embeddings, computed offline); `negative_prompt_embeds`: what guidance contrasts it with. With a distributed `group` (torchrun) the chunks are shared by the ranks;
    rank 0 gets the video and the others None. A latent-space model's sample is decoded to pixels by
    `model.latent_decoder` (set by `vin.load_model`), so `video` is always RGB frames.
    """
    world = group.world if group is not None and group.distributed else 1
    resolved = check_request(model, strategy, frames, steps, seed, world, prompt_embeds is not None, **options)
    o = make_options(frames, steps, seed, progress=progress, **options)
    if world > 1:
        result = run_vin_distributed(model, o, group, labels=prompt_embeds, null_labels=negative_prompt_embeds)
        if group.rank != 0:
            return None
    else:
        result = run_strategy(model, strategy, o, resolved=resolved, labels=prompt_embeds, null_labels=negative_prompt_embeds)
    sample, seconds = result.sample, result.seconds
    if model.latent_decoder is not None:  # latents -> pixels; the decoding counts in `seconds`
        start = time.perf_counter()
        sample = model.latent_decoder(sample)
        seconds += time.perf_counter() - start
    video = torch.from_numpy(to_uint8(sample[0]))
    return Generation(video, result.strategy, result.model_calls, result.window_calls, seconds)
