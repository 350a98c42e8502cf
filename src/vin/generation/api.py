"""`vin.generate`: one long video from a trained model, with any strategy."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..diffusion.objective import NUM_TRAIN_TIMESTEPS
from ..errors import VinError
from ..model.protocol import VideoModel
from ..parallel import Group, chunk_ranges
from ..videos import to_uint8
from .distributed import run_vin_distributed
from .memory import check_memory
from .options import GenerationOptions, make_options
from .strategies import Plan, plan, run_strategy


@dataclass
class Generation:
    video: torch.Tensor  # (T, H, W, 3) uint8, decoded to pixels for a latent-space model
    strategy: str
    model_calls: int
    window_calls: int
    seconds: float  # sampling, and decoding for a latent-space model


def check_decodable(model: VideoModel) -> None:
    """The model's samples can become an RGB video: pixels, or latents with their autoencoder at hand."""
    if model.latent_decoder is not None:
        model.latent_decoder.check()
    elif model.config.in_channels != 3:
        raise VinError(f"this model makes {model.config.in_channels}-channel latents, not RGB frames, and no autoencoder is "
                       "known to decode them (its folder has no autoencoder.json); give the autoencoder it was trained with: "
                       "--autoencoder DIR (vin generate / vin eval) or vin.load_model(path, autoencoder=DIR)")  # fmt: skip


def read_prompt_embeds(path: str | Path, flag: str = "--prompt-embeds") -> torch.Tensor:
    """A prompt's token embeddings (1, L, D) from a .safetensors file that holds one tensor, (L, D) or (1, L, D):
    what a text encoder gave for it offline (for Wan2.1: UMT5-XXL, as its pipeline's `encode_prompt` returns)."""
    from ..weights import read_safetensors

    path = Path(path).expanduser()
    if not path.is_file():
        raise VinError(f"{flag} {str(path)!r} does not exist; give a .safetensors file holding one tensor of token embeddings (L, D)")
    tensors = read_safetensors(path, f"{flag} {str(path)!r}")
    if len(tensors) != 1:
        raise VinError(f"{flag} {str(path)!r} holds {len(tensors)} tensors ({', '.join(sorted(tensors)[:4])}); it must hold exactly one")
    (emb,) = tensors.values()
    if emb.ndim == 2:
        emb = emb[None]
    if emb.ndim != 3 or emb.shape[0] != 1:
        raise VinError(f"{flag} {str(path)!r}: its tensor is {tuple(emb.shape)}; one prompt's token embeddings are (L, D) or (1, L, D)")
    check_finite(emb, f"{flag} {str(path)!r}")
    return emb.float()


def check_finite(tensor: torch.Tensor, what: str) -> None:
    """Refuses a tensor with NaN or Inf values in one line: a model reads them as a silently black (or null) video."""
    bad = int((~torch.isfinite(tensor)).sum()) if tensor.is_floating_point() else 0
    if bad:
        raise VinError(f"{what}: NaN or Inf in {bad} of {tensor.numel()} values; recompute the embeddings "
                       "(an fp16 text encoder can overflow) and save them in float32")  # fmt: skip


def check_negative(negative: object | None, guidance: float, flag: str = "--negative-embeds") -> None:
    """A negative prompt (embeddings, or text with `flag` --negative-prompt) acts only through classifier-free
    guidance: refused (not ignored) when guidance is off."""
    if negative is not None and guidance == 1.0:
        raise VinError("a negative prompt acts only through guidance, which is off (guidance 1): give --guidance "
                       f"(e.g. 5; guidance= in Python) or drop {flag}")  # fmt: skip


def check_prompts(model: VideoModel, prompt_embeds: torch.Tensor | None, negative_prompt_embeds: torch.Tensor | None) -> None:
    """Prompt embeddings fit the model: a Wan backbone needs them, and their width is the model's text_dim."""
    if negative_prompt_embeds is not None and prompt_embeds is None:
        raise VinError("a negative prompt (--negative-embeds) needs a prompt (--prompt-embeds)")
    if prompt_embeds is None and model.needs_condition:
        raise VinError("a VIN on a Wan backbone samples from a prompt: give its token embeddings "
                       "(--prompt-embeds FILE.safetensors, or prompt_embeds=)")  # fmt: skip
    for name, emb in (("prompt", prompt_embeds), ("negative prompt", negative_prompt_embeds)):
        if emb is None:
            continue
        if model.config.text_dim == 0:
            raise VinError(f"this model is not conditioned on text (model.text_dim=0): it takes no {name} embeddings; drop them")
        if emb.ndim != 3 or emb.shape[0] != 1 or emb.shape[-1] != model.config.text_dim:
            raise VinError(f"the {name} embeddings are {tuple(emb.shape)}; this model reads (1, L, {model.config.text_dim})")
        check_finite(emb, f"the {name} embeddings")


def check_text(prompt: str | None, negative_prompt: str | None, prompt_embeds, negative_prompt_embeds, guidance: float) -> None:
    """Text prompts are given alone (not beside embeddings), a negative prompt with a prompt and with guidance."""
    if prompt_embeds is not None or negative_prompt_embeds is not None:
        raise VinError("give prompts as text (--prompt) or as embeddings (--prompt-embeds), not both")
    if prompt is None:
        raise VinError("a negative prompt (--negative-prompt) needs a prompt (--prompt)")
    check_negative(negative_prompt, guidance, "--negative-prompt")


def check_request(model: VideoModel, strategy: str, options: GenerationOptions, world: int = 1, labelled: bool = False) -> Plan:
    """Everything that can be wrong with a request against `model`, checked before any work starts (raises
    VinError); `options` were checked when they were made.

    `world`: the number of ranks that will share the work; `labelled`: a condition comes with the request
    other than `options.label` (prompt embeddings). Returns the resolved plan.
    """
    if model.config.full_frames > 0 and strategy != "full":
        raise VinError(f"this checkpoint is a full-attention model (trained on whole clips, model.full_frames="
                       f"{model.config.full_frames}): sample it with the full strategy, not {strategy!r}")  # fmt: skip
    p = plan(model, strategy, options, labelled=labelled)
    if p.scheduler == "ddim" and options.steps > NUM_TRAIN_TIMESTEPS:  # diffusers' DDIM refuses more, mid-run
        raise VinError(f"steps must be at most {NUM_TRAIN_TIMESTEPS} with the DDIM scheduler (its training timesteps), "
                       f"got {options.steps}")  # fmt: skip
    check_decodable(model)
    if world > 1:
        if strategy != "vin":
            raise VinError(f"strategy {strategy!r} runs in one process; only vin shards its chunks across ranks")
        if model.config.context_mode == "shared":
            raise VinError("model.context_mode=shared borrows each chunk's context inside one pass; "
                           "chunk-parallel sampling across ranks needs context_mode=recompute")  # fmt: skip
        chunk_ranges(p.chunks, world)
    check_memory(model, strategy, p, options.guidance, world)
    return p


def generate(
    model: VideoModel,
    frames: int,
    steps: int = 25,
    seed: int = 0,
    strategy: str = "vin",
    progress: bool = False,
    group: Group | None = None,
    prompt_embeds: torch.Tensor | None = None,
    negative_prompt_embeds: torch.Tensor | None = None,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    **options,
) -> Generation | None:
    """Generates one video of `frames` frames with `strategy`; the same seed gives the same video.

    `options` are the fields of `GenerationOptions`: label, guidance, chunk_frames, context_frames,
    keyframe_stride, fusion_schedule, fusion_fraction, global_tokens, queue, overlap_frames, cutoff,
    position_interpolation, scheduler. `prompt` / `negative_prompt`: text, encoded by the model's own text encoder
    (a Wan pipeline folder's UMT5, as WanPipeline encodes it; with guidance and no negative prompt, the empty
    one); or `prompt_embeds` (1, L, D) / `negative_prompt_embeds`: a text model's condition computed offline.
    With a distributed `group` (torchrun) the chunks are shared by the ranks; rank 0 gets the video and the
    others None. A latent-space model's sample is decoded to pixels by `model.latent_decoder` (set by
    `vin.load_model`), so `video` is always RGB frames.
    """
    o = make_options(frames, steps, seed, progress=progress, **options)
    return generate_from(model, strategy, o, group, prompt_embeds, negative_prompt_embeds, prompt, negative_prompt)


def generate_from(
    model: VideoModel,
    strategy: str,
    options: GenerationOptions,
    group: Group | None = None,
    prompt_embeds: torch.Tensor | None = None,
    negative_prompt_embeds: torch.Tensor | None = None,
    prompt: str | None = None,
    negative_prompt: str | None = None,
) -> Generation | None:
    """`generate` for a request whose options are already made (and so checked): the CLI's path."""
    world = group.world if group is not None and group.distributed else 1
    check_negative(negative_prompt_embeds, options.guidance)
    text = prompt is not None or negative_prompt is not None
    if text:
        check_text(prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, options.guidance)
    else:
        check_prompts(model, prompt_embeds, negative_prompt_embeds)
    resolved = check_request(model, strategy, options, world, text or prompt_embeds is not None)
    if text:  # encoded once everything else is known to be right (a real text encoder is large and slow)
        prompt_embeds = model.encode_prompt([prompt])
        if negative_prompt is not None or options.guidance != 1.0:
            negative_prompt_embeds = model.encode_prompt([negative_prompt or ""])
        check_prompts(model, prompt_embeds, negative_prompt_embeds)
    if world > 1:
        result = run_vin_distributed(model, options, group, prompt_embeds, negative_prompt_embeds, resolved)
        if group.rank != 0:
            return None
    else:
        result = run_strategy(model, strategy, options, resolved=resolved, labels=prompt_embeds, null_labels=negative_prompt_embeds)
    sample, seconds = result.sample, result.seconds
    if model.latent_decoder is not None:  # latents -> pixels; the decoding counts in `seconds`
        start = time.perf_counter()
        sample = model.latent_decoder(sample)
        seconds += time.perf_counter() - start
    video = torch.from_numpy(to_uint8(sample[0]))
    return Generation(video, result.strategy, result.model_calls, result.window_calls, seconds)
