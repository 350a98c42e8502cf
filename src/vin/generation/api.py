"""`vin.generate`: one long video from a trained model, with any strategy."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..diffusion.objective import NUM_TRAIN_TIMESTEPS
from ..diffusion.sampling import Condition
from ..errors import VinError
from ..model.protocol import VideoModel
from ..parallel import Group, chunk_ranges
from ..videos import to_uint8
from .conditions import chunk_conditions, count, is_schedule, per_chunk
from .continuation import check_init, encode_init, read_init
from .distributed import run_vin_distributed
from .memory import check_memory
from .options import GenerationOptions, make_options
from .strategies import Plan, check_chunk_conditions, plan, run_strategy


Prompt = str | torch.Tensor | Sequence | Mapping | None  # once, one per chunk, or {first chunk: prompt}


@dataclass
class Generation:
    video: torch.Tensor  # (T, H, W, 3) uint8, decoded to pixels for a latent-space model
    strategy: str
    model_calls: int
    window_calls: int
    seconds: float  # sampling, and decoding for a latent-space model
    given_frames: int = 0  # a continuation: the first frames, the given video's own


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


def check_request(model: VideoModel, strategy: str, options: GenerationOptions, world: int = 1, labelled: bool = False,
                  conditions: int = 1, continued: bool = False) -> Plan:  # fmt: skip
    """Everything that can be wrong with a request against `model`, checked before any work starts (raises
    VinError); `options` were checked when they were made.

    `world`: the number of ranks that will share the work; `labelled`: a condition comes with the request
    other than `options.label` (prompt embeddings); `conditions`: how many, one per chunk (1: the video's);
    `continued`: an init video comes with it. Returns the resolved plan.
    """
    if model.config.full_frames > 0 and strategy != "full":
        raise VinError(f"this checkpoint is a full-attention model (trained on whole clips, model.full_frames="
                       f"{model.config.full_frames}): sample it with the full strategy, not {strategy!r}")  # fmt: skip
    p = plan(model, strategy, options, labelled=labelled, conditions=conditions, continued=continued)
    if p.scheduler == "ddim" and options.steps > NUM_TRAIN_TIMESTEPS:  # diffusers' DDIM refuses more, mid-run
        raise VinError(f"steps must be at most {NUM_TRAIN_TIMESTEPS} with the DDIM scheduler (its training timesteps), "
                       f"got {options.steps}")  # fmt: skip
    check_decodable(model)
    if world > 1:
        if strategy != "vin":
            raise VinError(f"strategy {strategy!r} runs in one process; only vin shards its chunks across ranks")
        if conditions > 1 or isinstance(options.label, tuple):
            raise VinError("a condition per chunk runs in one process: drop --nproc")
        if model.config.context_mode == "shared":
            raise VinError("model.context_mode=shared borrows each chunk's context inside one pass; "
                           "chunk-parallel sampling across ranks needs context_mode=recompute")  # fmt: skip
        chunk_ranges(p.chunks, world)
    if continued and options.init_mode == "clean" and strategy != "vin":
        raise VinError(f"init_mode=clean gives vin's wholly given chunks at time 0; {strategy} takes given frames its own "
                       "way: drop --init-mode or use --strategy vin")  # fmt: skip
    backward = continued and options.init_guidance > 0 and strategy != "fifo"  # reconstruction guidance's backward pass
    check_memory(model, strategy, p, options.guidance, world, backward)
    return p


def generate(
    model: VideoModel,
    frames: int,
    steps: int = 25,
    seed: int = 0,
    strategy: str = "vin",
    progress: bool = False,
    group: Group | None = None,
    prompt_embeds: Prompt = None,
    negative_prompt_embeds: torch.Tensor | None = None,
    prompt: Prompt = None,
    negative_prompt: str | None = None,
    init_video: str | Path | np.ndarray | torch.Tensor | None = None,
    **options,
) -> Generation | None:
    """Generates one video of `frames` frames with `strategy`; the same seed gives the same video.

    `frames` counts the model's frames: latent frames for a model whose autoencoder compresses time (Wan2.1: k + 1
    latent frames decode to 4k + 1 video frames; `vin generate --frames` and `WanVINPipeline(num_frames=)` count
    video frames and convert with `vin.generation.strategies.model_frames`).

    `options` are the fields of `GenerationOptions`: label, guidance, chunk_frames, context_frames,
    keyframe_stride, fusion_schedule, fusion_fraction, global_tokens, window_batch, queue, overlap_frames, cutoff,
    position_interpolation, scheduler. `prompt` / `negative_prompt`: text, encoded by the model's own text encoder
    (a Wan pipeline folder's UMT5, as WanPipeline encodes it; with guidance and no negative prompt, the empty
    one); or `prompt_embeds` (1, L, D) / `negative_prompt_embeds`: a text model's condition computed offline.
    A prompt (text or embeddings) may also be given per chunk, as a list with one per chunk or a schedule
    {first chunk: prompt} (prompt travel: `vin.generation.conditions`); a class label as `label=(3, 3, 7, 7)`.
    With a distributed `group` (torchrun) the chunks are shared by the ranks; rank 0 gets the video and the
    others None. A latent-space model's sample is decoded to pixels by `model.latent_decoder` (set by
    `vin.load_model`), so `video` is always RGB frames.
    `init_video`: a video to continue (a file, or (T, H, W, 3) uint8 frames such as an earlier `Generation.video`):
    its first `init_frames` frames (default: all; 1 is image-to-video) are kept as the start of the `frames` made,
    with any strategy (`vin.generation.continuation`).
    """
    o = make_options(frames, steps, seed, progress=progress, **options)
    return generate_from(model, strategy, o, group, prompt_embeds, negative_prompt_embeds, prompt, negative_prompt, init_video)


def generate_from(
    model: VideoModel,
    strategy: str,
    options: GenerationOptions,
    group: Group | None = None,
    prompt_embeds: Prompt = None,
    negative_prompt_embeds: torch.Tensor | None = None,
    prompt: Prompt = None,
    negative_prompt: str | None = None,
    init_video: str | Path | np.ndarray | torch.Tensor | None = None,
) -> Generation | None:
    """`generate` for a request whose options are already made (and so checked): the CLI's path."""
    world = group.world if group is not None and group.distributed else 1
    video = read_init(options, init_video, world)
    check_negative(negative_prompt_embeds, options.guidance)
    text = prompt is not None or negative_prompt is not None
    given_prompt = prompt if text else prompt_embeds
    if text:
        check_text(prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, options.guidance)
    else:
        for embeds in _values(prompt_embeds):
            check_prompts(model, embeds, negative_prompt_embeds)
    resolved = check_request(model, strategy, options, world, given_prompt is not None, count(given_prompt), video is not None)
    schedule = per_chunk(given_prompt, resolved.chunks, "prompt" if text else "prompt_embeds")
    if schedule is not None:  # a schedule {first chunk: prompt} is checked here, where the chunks are known
        check_chunk_conditions(strategy, resolved.chunks, resolved.chunks, resolved.chunk_frames)
    given = check_init(model, resolved, options, video) if video is not None else None
    labels, negative_prompt_embeds = _conditions(model, options, text, given_prompt, schedule, negative_prompt, negative_prompt_embeds)
    if world > 1:
        result = run_vin_distributed(model, options, group, labels, negative_prompt_embeds, resolved)
        if group.rank != 0:
            return None
    else:
        init = encode_init(model, given) if given is not None else None
        result = run_strategy(model, strategy, options, resolved=resolved, labels=labels,
                              null_labels=negative_prompt_embeds, init=init)  # fmt: skip
    sample, seconds = result.sample, result.seconds
    if model.latent_decoder is not None:  # latents -> pixels; the decoding counts in `seconds`
        start = time.perf_counter()
        sample = model.latent_decoder(sample)
        seconds += time.perf_counter() - start
    frames = to_uint8(sample[0])
    if given is not None:  # the given frames as given (a latent model's decoding of them is close, not equal)
        frames[: len(given)] = given
    count_given = 0 if given is None else len(given)
    return Generation(torch.from_numpy(frames), result.strategy, result.model_calls, result.window_calls, seconds, count_given)


def _values(value: Prompt) -> list:
    """The prompts of a value given once, per chunk or as a schedule."""
    if not is_schedule(value):
        return [value]
    return list(value.values()) if isinstance(value, Mapping) else list(value)


def _conditions(model: VideoModel, options: GenerationOptions, text: bool, prompt: Prompt, schedule: list | None,
                negative_prompt: str | None, negative_embeds: torch.Tensor | None) -> tuple[Condition, torch.Tensor | None]:  # fmt: skip
    """The request's condition for `run_strategy`: prompt embeddings (1, L, D), one per span of chunks, or None;
    text is encoded here, each distinct prompt once, after every check has passed (a real text encoder is large
    and slow). Returns (condition, the negative prompt's embeddings)."""
    if text and (negative_prompt is not None or options.guidance != 1.0):
        negative_embeds = model.encode_prompt([negative_prompt or ""])
    encode = (lambda p: model.encode_prompt([p])) if text else (lambda e: e)  # noqa: E731
    if schedule is not None:
        labels = chunk_conditions(schedule, encode)
        for embeds in labels.labels:
            check_prompts(model, embeds, negative_embeds)
        return labels, negative_embeds
    single = _values(prompt)[0] if prompt is not None else None
    labels = encode(single) if single is not None else None
    if text:
        check_prompts(model, labels, negative_embeds)
    return labels, negative_embeds
