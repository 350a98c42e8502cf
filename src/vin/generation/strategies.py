"""Long-video generation strategies, all over the same trained model, scheduler, steps, seed and guidance.

| strategy         | what it does                                                                         |
| ---------------- | ------------------------------------------------------------------------------------ |
| `vin`            | chunks in parallel, VIN tokens read the whole video every step, early fusion         |
| `full`           | the whole video as one window (positions squeezed into the trained range)            |
| `autoregressive` | chunk after chunk, each conditioned on the previous chunk's clean output             |
| `independent`    | chunks in parallel, each a separate short video: nothing passes between chunks       |
| `overlap`        | Gen-L-Video: overlapping windows, predictions averaged over overlaps at every step   |
| `freenoise`      | FreeNoise: base-window noise shuffled into every window, plus `overlap`'s fusion     |
| `spectral`       | FreeLong SpectralBlend: low temporal frequencies of global attention, high of local  |
| `fifo`           | FIFO-Diffusion, chunk by chunk: a queue of chunks at rising noise levels (diagonal)  |

Baselines run the model as the short-video model it is: a window is a one-chunk video, with its own
VIN read of its own frames (the model never saw a video without VIN tokens). Every strategy validates
the request before any work (`plan`), counts its model calls, and returns a `StrategyOutput`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from einops import rearrange

from tqdm.auto import tqdm

from ..config import check_geometry, frame_size as model_frame_size
from ..diffusion.objective import Objective
from ..diffusion.sampling import ChunkConditions, Condition, GuidedModel, Known, Sampler, initial_noise, per_span
from ..errors import VinError
from ..model.protocol import VideoModel
from ..model.windows import assemble
from .options import STRATEGIES, GenerationOptions


@dataclass
class StrategyOutput:
    sample: torch.Tensor  # (B, C, T, H, W): pixels in [-1, 1], or a latent-space model's latents
    strategy: str
    model_calls: int  # forward passes of the model (a guided pass counts once)
    window_calls: int  # windows (chunk-sized or longer sequences) evaluated over all calls
    seconds: float


@dataclass(frozen=True)
class Plan:
    """A request resolved against the model: every size the strategies need."""

    frames: int
    chunk_frames: int
    context_frames: int
    keyframe_stride: int
    chunks: int
    window_starts: tuple[int, ...]  # overlap / freenoise windows
    time_scale: float  # full / spectral
    clip: bool = True  # pixel space: samples clamped to [-1, 1]; False for a latent-space model
    scheduler: str = "euler"  # the scheduler the request samples with (the model's default unless asked)
    size: tuple[int, int] = (32, 32)  # (height, width) of a frame the model denoises (latent positions for latents)
    window_batch: int = 1  # vin: chunks whose windows one DiT call runs (the request's, at most all)
    noise: str = "independent"  # the initial noise: independent | shuffled (`video_noise`)


def fusion_steps(schedule: str, fraction: float, steps: int) -> range:
    """Indices of the steps that fuse: the first, middle or last `fraction` of the steps, or none. A range, so
    its size and `step in fused` cost nothing whatever the number of steps."""
    count = round(fraction * steps)
    if schedule == "none" or count == 0:
        return range(0)
    start = {"early": 0, "mid": (steps - count) // 2, "late": steps - count}[schedule]
    return range(start, start + count)


def window_sizes(model: VideoModel, o: GenerationOptions) -> tuple[int, int, int]:
    """(chunk_frames F, context_frames K, keyframe_stride s) of a request: `None` means the model's value.
    The one place these settings are resolved (`plan` uses it)."""
    cfg = model.config
    f = cfg.chunk_frames if o.chunk_frames is None else o.chunk_frames
    k = cfg.context_frames if o.context_frames is None else o.context_frames
    s = cfg.keyframe_stride if o.keyframe_stride is None else o.keyframe_stride
    return f, k, s


CHUNKED = ("vin", "independent", "autoregressive", "fifo", "spectral")  # strategies whose frames are cut into chunks


def model_frames(model: VideoModel, strategy: str, o: GenerationOptions) -> int:
    """`o.frames` read as video frames -> the frames the model samples. Through an autoencoder that compresses time
    `temporal` times, n video frames are (n - 1) / temporal + 1 latent frames (Wan2.1: 4k + 1 -> k + 1); otherwise
    the same count (`plan` checks it). A count the autoencoder cannot make, or one whose latent frames do not fill
    whole chunks (a chunked strategy), is a one-line error naming the nearest counts that work, in video frames."""
    temporal = model.latent_decoder.temporal if model.latent_decoder is not None else 1
    if temporal == 1:
        return o.frames
    n = o.frames
    step = window_sizes(model, o)[0] if strategy in CHUNKED else model.config.patch_t
    latent = (n - 1) // temporal + 1
    if (n - 1) % temporal == 0 and latent % step == 0:
        return latent
    low = latent // step * step
    near = " or ".join(str((m - 1) * temporal + 1) for m in (low, low + step) if m >= 1)
    chunks = f", in chunks of {step} latent frames ({step * temporal} frames)" if step > 1 else ""
    if (n - 1) % temporal:
        raise VinError(f"{n} frames: the autoencoder makes videos of {temporal}k + 1 frames (k + 1 latent frames{chunks}); use {near}")
    raise VinError(f"{n} frames make {latent} latent frames, which chunks of {step} latent frames ({step * temporal} "
                   f"frames) do not fill; use {near} frames")  # fmt: skip


def frame_size(model: VideoModel, o: GenerationOptions) -> tuple[int, int]:
    """(height, width) of the frames the model denoises for `o.height` x `o.width` pixels (None: the model's
    sample size); a latent-space model's decoder enlarges them `spatial` times. Sizes a patch of the model
    (times the decoder's factor) does not divide are refused, naming the nearest that work."""
    cfg = model.config
    spatial = model.latent_decoder.spatial if model.latent_decoder is not None else 1
    unit = spatial * cfg.patch_hw
    sizes = []
    for name, pixels, own in zip(("height", "width"), (o.height, o.width), model_frame_size(cfg.sample_size)):
        if pixels is None:
            sizes.append(own)
        elif pixels % unit:
            low = max(unit, pixels // unit * unit)
            why = f"the patch, {cfg.patch_hw}, times the autoencoder's {spatial}x" if spatial > 1 else "the patch size"
            raise VinError(f"{name}={pixels} must be a multiple of {unit} ({why}); use {low} or {low + unit}")
        else:
            sizes.append(pixels // spatial)
    return sizes[0], sizes[1]


def plan(model: VideoModel, strategy: str, o: GenerationOptions, labelled: bool = False, conditions: int = 1,
         continued: bool = False) -> Plan:  # fmt: skip
    """Checks a request for `strategy` and resolves it; raises a one-line VinError before any work.

    `labelled`: class labels come with the request other than through `o.label` (a batch of them);
    `conditions`: how many per-chunk conditions come with it other than through `o.label` (prompts, one per chunk);
    `continued`: given frames come with it (a continuation), which changes the noise `vin` draws by default.
    """
    cfg = model.config
    if strategy not in STRATEGIES:
        raise VinError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy == "spectral" and not model.exposes_blocks:  # a pretrained backbone (Wan) runs as one forward
        raise VinError("spectral blends attention inside each block of the project's own DiT; on a Wan backbone use "
                       "full, vin or another strategy")  # fmt: skip
    if strategy == "spectral" and cfg.attention == "factorised":
        raise VinError("spectral blends 3D attention outputs; this model has factorised attention (model.attention=factorised)")
    if strategy == "fifo" and (cfg.objective != "flow" or cfg.full_frames > 0):
        raise VinError("fifo steps each chunk at its own noise level: it needs a chunked flow model (model.objective=flow)")
    if o.label is not None:
        if cfg.num_classes == 0:
            raise VinError("this model is unconditional: drop the label")
        if max(_labels(o.label)) >= cfg.num_classes:
            raise VinError(f"label must be in [0, {cfg.num_classes - 1}], got {max(_labels(o.label))}")
    if o.guidance != 1.0 and ((cfg.num_classes == 0 and cfg.text_dim == 0) or (o.label is None and not labelled)):
        raise VinError("classifier-free guidance needs a conditional model and a condition (a label or prompt "
                       "embeddings); use guidance 1")  # fmt: skip
    f, k, s = window_sizes(model, o)
    t = o.frames
    starts: tuple[int, ...] = ()
    if strategy in ("overlap", "freenoise"):
        check_geometry(f, f, k, cfg.patch_t, s)
        overlap = f // 2 if o.overlap_frames is None else o.overlap_frames
        overlap -= overlap % cfg.patch_t if o.overlap_frames is None else 0
        if not 0 <= overlap < f or overlap % cfg.patch_t:
            raise VinError(f"overlap_frames={overlap} must be a multiple of {cfg.patch_t} in [0, {f})")
        stride = f - overlap
        if t < f or (t - f) % stride:
            fit = f + max(0, -(-(t - f) // stride)) * stride
            raise VinError(f"{strategy}: {t} frames do not tile into windows of {f} frames every {stride} frames; use {fit}")
        starts = tuple(range(0, t - f + 1, stride))
        n = len(starts)
    elif strategy == "full":
        if t <= 0 or t % cfg.patch_t:
            raise VinError(f"full: frames={t} must be a positive multiple of the temporal patch size {cfg.patch_t}")
        n = 1
    else:
        n = check_geometry(t, f, k, cfg.patch_t, s)
    check_chunk_conditions(strategy, len(_labels(o.label)) if isinstance(o.label, tuple) else conditions, n, f)
    trained = (cfg.full_frames or cfg.chunk_frames) // cfg.patch_t  # own-frame positions the model was trained on
    length = t // cfg.patch_t
    scale = (trained - 1) / (length - 1) if o.position_interpolation and length > trained else 1.0
    scheduler = model.default_scheduler if o.scheduler is None else o.scheduler
    if scheduler not in model.schedulers:
        raise VinError(f"scheduler {scheduler!r}: this model samples with {' or '.join(model.schedulers)}")
    # a model with context_mode=shared borrows each window's context from its neighbour inside one call: all at once
    window_batch = n if cfg.context_mode == "shared" else min(o.window_batch, n)
    noise = o.noise if o.noise is not None else CONTINUATION_NOISE.get(strategy, STRATEGY_NOISE[strategy]) if continued \
        else STRATEGY_NOISE[strategy]  # fmt: skip
    return Plan(t, f, k, s, n, starts, scale, model.latent_decoder is None, scheduler, frame_size(model, o), window_batch,
                noise)  # fmt: skip


# the initial noise each strategy draws unless asked (GenerationOptions.noise). FreeNoise's is its rescheduling; vin's
# too: with a draw per frame the VIN's read of the whole video averages the chunks' unrelated noise, and the video
# comes out grey with faint sprites; with every chunk drawn from the first chunk's frames the read agrees with each
# chunk (measured: drift 6.8 -> 3.2 and subject consistency 0.869 -> 0.909 at 256 frames; benchmarks/results.md)
STRATEGY_NOISE = {name: "independent" for name in STRATEGIES} | {"freenoise": "shuffled", "vin": "shuffled"}
# ... and in a continuation: shuffled noise ties every chunk to the first chunk's draw, which is where the given frames
# are, and pulls the made chunks towards the model's own scene; a draw per frame lets the given frames lead (measured:
# given drift 17.1 independent against 26.5 shuffled, 256 frames with 16 given, 8 held-out videos; benchmarks/results.md)
CONTINUATION_NOISE = {"vin": "independent"}
CHUNK_CONDITION_STRATEGIES = ("vin", "autoregressive", "independent", "fifo")  # windows that are whole chunks


def _labels(label: int | tuple[int, ...]) -> tuple[int, ...]:
    return label if isinstance(label, tuple) else (label,)


def check_chunk_conditions(strategy: str, count: int, chunks: int, chunk_frames: int) -> None:
    """A condition per chunk (count > 1) needs a strategy whose windows are whole chunks, and one per chunk."""
    if count <= 1:
        return
    if strategy not in CHUNK_CONDITION_STRATEGIES:
        raise VinError(f"a condition per chunk needs windows that are whole chunks: use {', '.join(CHUNK_CONDITION_STRATEGIES)}, "
                       f"not {strategy}")  # fmt: skip
    if count != chunks:
        raise VinError(f"{count} conditions (labels or prompts) for {chunks} chunks of {chunk_frames} frames: give one, or "
                       f"one per chunk")  # fmt: skip


# --------------------------------------------------------------------------------------------------
# How each strategy runs the model on one noisy video x: (B, C, T, H, W) -> prediction (B, C, T, H, W)


def _per_chunk(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, n: int):
    """A video of n chunks as n one-chunk videos: (B, C, n*F, H, W) -> (B*n, C, F, H, W)."""
    xs = rearrange(x, "b c (n f) h w -> (b n) c f h w", n=n)
    ts = t.reshape(-1) if t.ndim == 2 else t.repeat_interleave(n)  # a time per chunk (B, N), or per video (B,)
    return xs, ts, (y.repeat_interleave(n, dim=0) if y is not None else None)


def _short_videos(model: VideoModel, xs, ts, ys, p: Plan, tokens: str) -> torch.Tensor:
    """Each of B*n sequences as a one-chunk video (own VIN read, placeholder context) -> own frames."""
    z = model.read_interface(xs, ts, ys, p.keyframe_stride) if tokens != "none" else None
    return model.denoise_chunks(xs, ts, ys, z, p.chunk_frames, p.context_frames)[:, 0, :, p.context_frames :]


def vin_tokens(model: VideoModel, p: Plan, tokens: str, x, t, y, frame_offset: int = 0, merge=None) -> torch.Tensor | None:
    """Z_t of the `vin` strategy for the chunks of x (B, C, n*F, H, W): `global` (the method: one read of the whole
    video; `frame_offset`/`merge` when x is one rank's share of it), `chunk` (each chunk reads only itself:
    (B, n, M, D), the no-global-tokens ablation) or `none`."""
    if tokens == "global":
        return model.read_interface(x, t, y, p.keyframe_stride, frame_offset, merge)
    if tokens == "chunk":
        n = x.shape[2] // p.chunk_frames
        return model.read_interface(*_per_chunk(x, t, y, n), p.keyframe_stride).unflatten(0, (x.shape[0], n))
    return None


def windows_in_groups(model: VideoModel, p: Plan, x: torch.Tensor, t: torch.Tensor, label, z: torch.Tensor | None,
                      chunks: slice | None, context: torch.Tensor | None = None) -> torch.Tensor:
    """`model.denoise_chunks` over `chunks` (None: all of x's) in DiT calls of at most `p.window_batch` windows,
    joined: (B, n, C, K+F, H, W). Each window reads only its own noisy frames and Z, so the groups give the
    video one call gives, with one group's activations at a time. `context`: chunk 0's (distributed)."""
    first, end, _ = (chunks or slice(None)).indices(x.shape[2] // p.chunk_frames)  # open ends too: slice(2, None)
    if end - first <= p.window_batch:
        return model.denoise_chunks(x, t, label, z, p.chunk_frames, p.context_frames, chunks=chunks, context=context)
    parts = [model.denoise_chunks(x, t, label, z, p.chunk_frames, p.context_frames, chunks=slice(a, min(a + p.window_batch, end)),
                                  context=context if a == 0 else None)
             for a in range(first, end, p.window_batch)]  # fmt: skip
    return torch.cat(parts, dim=1)


def _vin(model, p: Plan, o: GenerationOptions, noise, call: GuidedModel, sampler: Sampler, gen) -> torch.Tensor:
    fused = fusion_steps(o.fusion_schedule, o.fusion_fraction, o.steps)

    def fn(x, t, y):  # one pass over all windows, or one per span of chunks with a condition of its own
        def run(label, chunks):
            z = vin_tokens(model, p, o.global_tokens, x, t, label)  # the whole video, read under this condition
            return windows_in_groups(model, p, x, t, label, z, chunks)

        return per_span(y, run)

    given = sampler.known.count // p.chunk_frames if sampler.known is not None and o.init_mode == "clean" else 0

    def predict(x, t, i):
        if given:  # a continuation's wholly given chunks clean, at time 0
            return _given_clean(sampler.known, p, given, x, t, lambda xc, tc: predict_at(xc, tc, i))
        return predict_at(x, t, i)

    def predict_at(x, t, i):
        return assemble(call(fn, x, t, p.chunks), p.context_frames, fuse=i in fused)

    return sampler.run(noise, predict, gen, "vin")


def _given_clean(known: Known, p: Plan, given: int, x: torch.Tensor, t: torch.Tensor, predict) -> torch.Tensor:
    """`predict(x, times)` with the first `given` chunks of x clean at time 0 and the rest at t (B,): a time per
    chunk (B, N), as `train.init_prob` trains. x: (B, C, T, H, W) at level t. The given frames' prediction is the
    one that leads from x to them, so the scheduler step and reconstruction guidance see them exactly."""
    g = given * p.chunk_frames
    times = t[:, None].repeat(1, p.chunks)  # (B, N)
    times[:, :given] = 0.0
    clean = torch.cat([known.frames[:, :, :g].to(x.dtype), x[:, :, g:]], dim=2)  # keeps x's graph (guidance)
    pred = predict(clean, times)
    exact = known.objective.prediction(x[:, :, :g].float(), known.frames[:, :, :g].float(), t)  # (B, C, g, H, W)
    return torch.cat([exact.to(pred.dtype), pred[:, :, g:]], dim=2)


def _full(model, p: Plan, o, noise, call, sampler: Sampler, gen) -> torch.Tensor:
    def fn(x, t, y):
        z = model.read_interface(x, t, y, p.keyframe_stride)
        return model.denoise_chunks(x, t, y, z, p.frames, 0, p.time_scale)[:, 0]

    return sampler.run(noise, lambda x, t, i: call(fn, x, t, 1), gen, "full")


def _independent(model, p: Plan, o, noise, call, sampler: Sampler, gen) -> torch.Tensor:
    f = p.chunk_frames

    def fn(x, t, y):
        def run(label, chunks):  # chunks: a span of chunks with one condition (None: all)
            a, e = (0, p.chunks) if chunks is None else (chunks.start, chunks.stop)
            own = _short_videos(model, *_per_chunk(x[:, :, a * f : e * f], t, label, e - a), p, o.global_tokens)
            return rearrange(own, "(b n) c f h w -> b n c f h w", n=e - a)

        return rearrange(per_span(y, run), "b n c f h w -> b c (n f) h w")

    predict = lambda x, t, i: call(fn, x, t, p.chunks)  # noqa: E731
    return sampler.run(noise, predict, gen, "independent")


def _windows_fused(model, p: Plan, o, noise, call, sampler: Sampler, gen, desc: str) -> torch.Tensor:
    """Overlapping windows, each a one-chunk video; every frame's prediction is the mean over its windows."""
    f = p.chunk_frames
    index = torch.cat([torch.arange(a, a + f) for a in p.window_starts])  # (W*F,)
    counts = torch.bincount(index, minlength=p.frames).float().view(1, 1, -1, 1, 1).to(noise.device)
    index = index.to(noise.device)  # counted on the CPU: works on the `meta` device too

    def fn(x, t, y):
        xs = torch.stack([x[:, :, a : a + f] for a in p.window_starts], dim=1).flatten(0, 1)  # (B*W, C, F, H, W)
        w = len(p.window_starts)
        own = _short_videos(model, xs, t.repeat_interleave(w), y.repeat_interleave(w, dim=0) if y is not None else None, p, o.global_tokens)
        own = rearrange(own, "(b w) c f h w2 -> b c (w f) h w2", w=w)
        out = torch.zeros(x.shape, dtype=own.dtype, device=x.device).index_add_(2, index, own)
        return out / counts

    predict = lambda x, t, i: call(fn, x, t, len(p.window_starts))  # noqa: E731
    return sampler.run(noise, predict, gen, desc)


def video_noise(model: VideoModel, p: Plan, batch: int, size: int | tuple[int, int], generator: torch.Generator | None
                ) -> torch.Tensor:  # fmt: skip
    """The initial noise of a request (B, C, T, H, W): `initial_noise`, then, if the plan says `shuffled`, every
    chunk's frames a permutation of the first chunk's (`freenoise_noise`)."""
    noise = initial_noise(model, batch, p.frames, size, generator)
    return freenoise_noise(noise, p.chunk_frames, generator) if p.noise == "shuffled" else noise


def freenoise_noise(noise: torch.Tensor, window: int, generator: torch.Generator | None) -> torch.Tensor:
    """FreeNoise's rescheduling: every block of `window` frames is a random permutation of the first block."""
    out = noise.clone()
    base = noise[:, :, :window]
    for start in range(window, noise.shape[2], window):
        length = min(window, noise.shape[2] - start)
        perm = torch.randperm(window, generator=generator)[:length].to(noise.device)
        out[:, :, start : start + length] = base[:, :, perm]
    return out


def _chunk_label(labels: Condition, chunk: int) -> torch.Tensor | None:
    """The condition of one chunk, whether the video has one condition or one per span of chunks."""
    return labels.at(chunk) if isinstance(labels, ChunkConditions) else labels


def _autoregressive(model, p: Plan, o, noise, call, sampler: Sampler, gen) -> torch.Tensor:
    """N sampling chains one after the other; chunk i sees chunk i-1's clean output, re-noised to the
    current level (the model was trained with context at the chunk's own noise level)."""
    f, objective = p.chunk_frames, Objective(model.config.objective)
    context_noise = torch.randn(noise.shape, generator=gen).to(noise.device)  # drawn after the main noise
    chunks: list[torch.Tensor] = []
    known = sampler.known
    for i in range(p.chunks):
        xi = noise[:, :, i * f : (i + 1) * f]
        if known is not None and (i + 1) * f <= known.count:  # a given chunk: the next one's context as it is
            chunks.append(known.frames[:, :, i * f : (i + 1) * f].to(noise.dtype))
            continue
        if i == 0:  # the first chunk: a one-chunk video (placeholder context)
            fn = lambda x, t, y: _short_videos(model, x, t, _chunk_label(y, 0), p, "global")  # noqa: E731
        else:
            prev, eps = chunks[-1], context_noise[:, :, (i - 1) * f : i * f]

            def fn(x, t, y, prev=prev, eps=eps, i=i):
                y = _chunk_label(y, i)
                reps = x.shape[0] // prev.shape[0]  # guidance doubles the batch
                context = objective.add_noise(prev.repeat(reps, 1, 1, 1, 1), eps.repeat(reps, 1, 1, 1, 1), t).to(x.dtype)
                video = torch.cat([context, x], dim=2)  # (B, C, 2F, H, W): previous chunk, then this one
                z = model.read_interface(video, t, y, p.keyframe_stride)
                return model.denoise_chunks(video, t, y, z, f, p.context_frames, chunks=slice(1, 2))[:, 0, :, p.context_frames :]

        predict = lambda x, t, step, fn=fn: call(fn, x, t, 1)  # noqa: E731
        chunks.append(sampler.run(xi, predict, gen, f"chunk {i + 1}/{p.chunks}", start=i * f))
    return torch.cat(chunks, dim=2)


def _spectral(model, p: Plan, o, noise, call, sampler: Sampler, gen) -> torch.Tensor:
    """FreeLong's SpectralBlend in every block: the whole video attends globally and within windows of
    F frames; low temporal frequencies of the attention output come from the global branch, high from the local."""
    cfg = model.config
    tl = p.frames // cfg.patch_t
    n_local = p.frames // p.chunk_frames
    freqs = torch.fft.rfftfreq(tl) * 2  # 0 .. 1 (Nyquist)
    low = ((freqs < o.cutoff) | (o.cutoff >= 1.0)).view(1, -1, 1, 1)
    all_low = bool(low.all())  # decided on the CPU: works on the `meta` device too
    low = low.to(noise.device)

    def blend(block, h, video_len):  # h: (B, Tl*S [+ M VIN tokens], D)
        global_out = block.attn(h)  # global branch; the VIN token rows (concat) always come from it
        if all_low:
            return global_out
        b, d = h.shape[0], h.shape[2]
        extra = h[:, video_len:]  # VIN tokens (concat) or nothing
        local_in = h[:, :video_len].reshape(b * n_local, video_len // n_local, d)
        if extra.shape[1]:
            local_in = torch.cat([local_in, extra.repeat_interleave(n_local, dim=0)], dim=1)
        local = block.attn(local_in)[:, : video_len // n_local].reshape(b, video_len, d)
        g = global_out[:, :video_len].unflatten(1, (tl, -1)).float()  # (B, Tl, S, D)
        loc = local.unflatten(1, (tl, -1)).float()
        blended = torch.fft.irfft(torch.where(low, torch.fft.rfft(g, dim=1), torch.fft.rfft(loc, dim=1)), n=tl, dim=1)
        return torch.cat([blended.flatten(1, 2).to(h.dtype), global_out[:, video_len:]], dim=1)

    def fn(x, t, y):
        z = model.read_interface(x, t, y, p.keyframe_stride)
        tokens, _ = model.embed_windows(x, p.frames, 0, p.time_scale)  # (B, Tl*S, D): one window
        video_len = tokens.shape[1]
        c = model.condition(t, y)
        tokens = model.run_blocks(tokens, c, z, lambda block, h: blend(block, h, video_len))
        out = model.decode_windows(tokens, c, x.shape[0], x.shape[3], x.shape[4])  # (B, 1, C, T, H, W)
        return model.to_target(out, x.unsqueeze(1), t)[:, 0]

    return sampler.run(noise, lambda x, t, i: call(fn, x, t, 1), gen, "spectral")


def _fifo(model, p: Plan, o: GenerationOptions, noise, call: GuidedModel, sampler: Sampler, gen) -> torch.Tensor:
    """FIFO-Diffusion (Kim et al., 2024) at chunk granularity: diagonal denoising with a time per chunk.

    Chunk i starts `lag` = ceil(steps / queue) Euler steps after chunk i-1, so the chunks in flight form a
    queue of rising noise levels. Every call denoises the queue as one clip by one step per chunk, with
    the last finished chunk (clean) at its head as context; the VIN reads that clip only. A chunk that
    reaches level 0 leaves the queue. Nothing reaches further back than the queue: FIFO's memory is local.
    Cost: the same windows as vin (steps per chunk), in (N - 1) * lag + steps calls.
    A continuation's given chunks are finished before the first call: the queue starts at the first chunk that is
    not wholly given, with the last given chunk at its head; the given frames of a partly given chunk are kept at
    its level (`Known`).
    """
    sigmas, known = sampler.sigmas, sampler.known
    f, n, s, k = p.chunk_frames, p.chunks, o.steps, p.context_frames
    lag = -(-s // o.queue)
    x = noise.float().clone()  # stepped in place
    g = 0 if known is None else known.count // f  # chunks wholly given: finished from the start
    if g:
        x[:, :, : g * f] = known.frames[:, :, : g * f]
    for j in tqdm(range((n - 1 - g) * lag + s), desc="fifo", disable=not o.progress, leave=False):
        moving = [i for i in range(g, n) if (i - g) * lag <= j < (i - g) * lag + s]
        first, last = moving[0], moving[-1] + 1
        head = max(0, first - 1)  # the finished chunk before the queue (none before chunk 0 starts... or leaves)
        level = [j - (i - g) * lag for i in moving]
        if known is not None and first * f < known.count:  # a partly given chunk in flight: its given frames at its level
            at = torch.full((x.shape[0],), sigmas[level[0]] * 1000, device=x.device)
            x[:, :, first * f : last * f] = known.impose(x[:, :, first * f : last * f], at, first * f)
        times = [0.0] * (first - head) + [sigmas[i] * 1000 for i in level]
        t = torch.tensor(times, device=x.device).expand(x.shape[0], -1)  # (B, chunks in the clip)

        def fn(xx, tt, y, skip=first - head, head=head, last=last):
            def run(label, chunks):
                z = model.read_interface(xx, tt, label, p.keyframe_stride)
                return model.denoise_chunks(xx, tt, label, z, f, k, chunks=chunks)

            return per_span(y.within(head, last) if isinstance(y, ChunkConditions) else y, run, skip)

        windows = call(fn, x[:, :, head * f : last * f], t, len(moving))
        steps = torch.tensor([sigmas[i + 1] - sigmas[i] for i in level], device=x.device)
        x[:, :, first * f : last * f] += assemble(windows, k, fuse=False) * steps.repeat_interleave(f).view(1, 1, -1, 1, 1)
    if known is not None:
        x = known.impose(x, None)
    return x.clamp(-1, 1) if p.clip else x


RUNNERS = {
    "vin": _vin,
    "full": _full,
    "autoregressive": _autoregressive,
    "independent": _independent,
    "overlap": lambda *a: _windows_fused(*a, desc="overlap"),
    "freenoise": lambda *a: _windows_fused(*a, desc="freenoise"),
    "spectral": _spectral,
    "fifo": _fifo,
}


@torch.no_grad()
def run_strategy(
    model: VideoModel,
    strategy: str,
    options: GenerationOptions,
    generator: torch.Generator | None = None,
    batch: int = 1,
    labels: Condition = None,
    size: int | tuple[int, int] | None = None,
    resolved: Plan | None = None,
    null_labels: torch.Tensor | None = None,
    init: torch.Tensor | None = None,
) -> StrategyOutput:
    """Samples `batch` videos with `strategy`. The noise is drawn frame by frame, so the first frames of a
    long video's noise are those of a short one with the same seed. `size`: frame size, square or
    (height, width) [default: the model's sample size]. `resolved`: the request's plan, if already made.
    `labels`: class ids (B,), or the condition of a text model (prompt embeddings (B, L, D) for Wan), or one per
    span of chunks (`ChunkConditions`; `options.label` may also give a class id per chunk);
    `null_labels`: the unconditional condition that guidance contrasts with (a negative prompt's embeddings;
    default: a class-conditional model's null label). `init` (1 or B, C, G, H, W): the video's first G frames, given
    clean in the model's space (a continuation; `check_init` checked them): every strategy keeps them and makes
    the rest."""
    p = plan(model, strategy, options, labelled=labels is not None, continued=init is not None) if resolved is None else resolved
    generator = generator if generator is not None else torch.Generator().manual_seed(options.seed)
    if labels is None and isinstance(options.label, tuple):  # a label per chunk
        ids = {label: torch.full((batch,), label, dtype=torch.long) for label in set(options.label)}
        labels = ChunkConditions.of([ids[label] for label in options.label])
    elif labels is None and options.label is not None:
        labels = torch.full((batch,), options.label, dtype=torch.long)
    if labels is not None:
        labels = labels.map(lambda y: y.to(model.device)) if isinstance(labels, ChunkConditions) else labels.to(model.device)
    call = GuidedModel(model, labels, options.guidance, null_labels.to(model.device) if null_labels is not None else None)
    noise = video_noise(model, p, batch, p.size if size is None else size, generator)
    known = None
    if init is not None:
        given = init.to(noise.device, noise.dtype).expand(batch, -1, -1, -1, -1)
        known = Known(given, noise[:, :, : given.shape[2]], Objective(model.config.objective), options.init_guidance)
    sampler = Sampler(model.make_scheduler(p.scheduler, p.clip), options.steps, p.clip, options.progress, known)
    start = time.perf_counter()
    sample = RUNNERS[strategy](model, p, options, noise, call, sampler, generator)
    return StrategyOutput(sample, strategy, call.model_calls, call.window_calls, time.perf_counter() - start)
