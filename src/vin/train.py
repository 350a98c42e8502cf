"""The training loop: VIN and DiT trained end to end on the denoising loss.

Plain PyTorch: AdamW with linear warm-up then a constant or cosine learning rate, gradient
accumulation and clipping, an EMA of the weights (the EMA is what gets exported and sampled), clips
of 1, 2 or 4 chunks mixed as the paper does, bf16 autocast on CUDA, optional activation
checkpointing, DDP under torchrun. Clips come from the procedural data or a folder of videos
(`data.source`), in pixels or in an autoencoder's latent space (`data.autoencoder`).

The output directory is a loadable checkpoint at every save: config.json and
diffusion_pytorch_model.safetensors (EMA weights), train.yaml (the full config), log.jsonl (one line
per logged step), loss.png, samples/, data_report.json and summary.json. Beside it,
checkpoints/step_NNNNNNN hold what an exact resume needs (`vin.train_state`). A non-finite loss stops
the run with a message that names the last good checkpoint. SIGTERM / SIGINT stop it after the current
step, saved and resumable. `train.init_from` starts a fresh run from an exported model's weights. A
latent-space run also exports autoencoder.json, what decoding its samples needs (`vin.data.latent`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .config import Config, TrainConfig, save_config
from .devices import backbone_dtype, check_threads, resolve_device
from .data.synthetic import SyntheticVideos
from .diffusion.objective import Objective
from .errors import VinError
from .files import atomic_write_bytes
from .metrics.probe import PROBE_SIGMA, loss_gap
from .model import registry
from .model.protocol import VideoModel
from .monitor import plot_loss, read_log, write_sample
from .parallel import init_from_env, shutdown
from .train_state import list_checkpoints, load_state, remove_unfinished, save_state


def build_model(config: Config, device: torch.device | str = "cpu") -> VideoModel:
    """A freshly initialised model of the kind `config.model` describes (`vin.model.registry`), seeded from
    train.seed without touching the global RNG: the project's DiT, or a VIN on the pretrained backbone that
    `model.backbone` names (only the adapter is new; the frozen backbone in train.backbone_dtype for `device`)."""
    dtype = backbone_dtype(config.train.backbone_dtype, device) if config.model.backbone else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        return registry.build(config.model, config.train.lora_rank, dtype)


def copy_for_ema(model: torch.nn.Module) -> torch.nn.Module:
    """The EMA's copy of `model`: trained tensors copied, frozen ones (a pretrained backbone) shared, not doubled."""
    frozen = {id(p): p for p in model.parameters() if not p.requires_grad}
    return copy.deepcopy(model, memo=frozen).requires_grad_(False).eval()


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        if e is not p:  # a frozen tensor both share (copy_for_ema) stays as it is
            e.lerp_(p.detach(), 1 - decay)


def init_from_path(tc: TrainConfig) -> Path:
    """train.init_from as a folder ("default", "full": the shipped checkpoints)."""
    from .checkpoint import checkpoint_path

    return checkpoint_path(tc.init_from)


# Model settings a fine-tune may change: they shape the windows, not the weights. The shipped default was trained
# with 4 context frames and samples with 8 (measured better); `configs/small.yaml` fine-tunes it with 4.
FREE_IN_FINE_TUNES = ("context_frames",)


def check_init_from(config: Config) -> Path:
    """train.init_from is an exported model whose config.json is the run's model config; returns its folder."""
    from .checkpoint import read_model_config

    path = init_from_path(config.train)
    try:
        theirs = read_model_config(path)
    except VinError as err:
        raise VinError(f"train.init_from: {err}") from None
    ours = config.model

    def same(name: str) -> bool:  # a backbone folder is the same wherever it is named from
        a, b = getattr(ours, name), getattr(theirs, name)
        return a == b or (name == "backbone" and bool(a) and bool(b) and Path(a).expanduser().resolve() == Path(b).resolve())

    differ = [f"model.{f.name}: {getattr(ours, f.name)!r} here, {getattr(theirs, f.name)!r} there" for f in fields(ours)
              if f.name not in FREE_IN_FINE_TUNES and not same(f.name)]  # fmt: skip
    if differ:
        raise VinError(f"train.init_from={str(path)!r} is a different model than this run's config: {'; '.join(differ)}. "
                       "Set the run's model section to the folder's config.json (e.g. the config it was trained with)")  # fmt: skip
    return path


def load_init_weights(model: VideoModel, config: Config) -> None:
    """Copies train.init_from's weights into `model` (its config checked first): the start of a fine-tune.
    Read from the weights file alone: a Wan run's backbone is not loaded a second time."""
    from .checkpoint import WEIGHTS_NAME
    from .weights import read_safetensors

    path = check_init_from(config)
    weights = read_safetensors(path / WEIGHTS_NAME, f"train.init_from: {path / WEIGHTS_NAME}")
    try:
        model.load_trained_state_dict(weights)
    except (RuntimeError, VinError) as err:
        raise VinError(f"train.init_from: {path}'s weights do not fit its config.json ({str(err).splitlines()[0]})") from None


class StopRequest:
    """SIGTERM / SIGINT while training: the run stops after the current step, saved and resumable.

    A first signal only sets `signal`; the loop checks it at the end of each step. A second SIGINT
    (Ctrl-C twice) interrupts at once. Handlers are installed only in the main thread, and restored on exit.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def agreed(self, group) -> int | None:
        """The signal any rank got (every rank stops at the same step), or None."""
        if not group.distributed:
            return self.signal
        flag = torch.tensor([self.signal or 0], device=group.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag) or None


def lr_factor(step: int, tc: TrainConfig) -> float:
    """The learning rate at optimizer step `step` (1-based), as a fraction of train.lr.

    Linear warm-up over train.warmup_steps, then constant or a half cosine down to train.min_lr_ratio
    at train.steps. A pure function of the step: restoring the step restores the schedule.
    """
    warm = min(1.0, step / max(1, tc.warmup_steps))
    if tc.lr_schedule == "constant" or step <= tc.warmup_steps:
        return warm
    progress = min(1.0, (step - tc.warmup_steps) / max(1, tc.steps - tc.warmup_steps))
    return tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def with_pipeline_autoencoder(config: Config) -> Config:
    """A backbone given as its whole pipeline folder brings its VAE: data.autoencoder defaults to `<folder>/vae`."""
    from .backbones import pipeline_folder

    folder = pipeline_folder(config.model.backbone) if config.model.backbone else None
    if folder is None or config.data.autoencoder or not (folder / "vae").is_dir():
        return config
    return replace(config, data=replace(config.data, autoencoder=str(folder / "vae")))


def check_config(config: Config, world: int = 1) -> Config:
    """Everything about a run's config that can be checked before any work; raises a VinError that says how to
    fix it, or returns the config with the model resolved (`vin.model.registry.resolve`: a backbone's geometry).

    Each section's own ranges and names (`ModelConfig.check`, `TrainConfig.check`), then how the sections
    fit together; `world`: the ranks that will share each batch. `train` runs it first.
    """
    config = with_pipeline_autoencoder(replace(config, model=registry.resolve(config.model)))
    m, d, t = config.model, config.data, config.train.check()
    if d.source not in ("synthetic", "folder"):
        raise VinError(f"data.source must be synthetic or folder, got {d.source!r}")
    if d.autoencoder:
        from .data.latent import autoencoder_meta, geometry

        if d.source != "folder":
            raise VinError("data.autoencoder (latent space) needs data.source=folder")
        channels, spatial, _ = geometry(autoencoder_meta(d.autoencoder))
        h, w = (side * spatial for side in m.frame_size)
        if (d.height, d.width) != (h, w):
            raise VinError(f"data.height/width ({d.height}x{d.width}) must be model.sample_size ({m.sample_size}) times the "
                           f"autoencoder's spatial factor {spatial}: {h}x{w}")  # fmt: skip
        if m.in_channels != channels:
            raise VinError(f"model.in_channels={m.in_channels} must equal the autoencoder's latent channels ({channels})")
    elif m.backbone:
        raise VinError("a wan backbone denoises its VAE's latents: set data.source=folder, and model.backbone to the whole "
                       "pipeline folder (its vae/ is used) or data.autoencoder to the AutoencoderKLWan folder")  # fmt: skip
    elif (d.height, d.width) != m.frame_size:
        raise VinError(f"data.height/width ({d.height}x{d.width}) must equal model.sample_size ({m.sample_size})")
    elif d.source == "folder" and m.in_channels != 3:
        raise VinError(f"model.in_channels={m.in_channels}: video frames in pixel space have 3 channels")
    if m.text_dim > 0 and not (d.source == "folder" and d.captions):
        raise VinError("model.text_dim > 0 needs text embeddings: data.source=folder and data.captions=<file>.safetensors")
    if t.backbone_dtype not in ("auto", "fp32") and not m.backbone:
        raise VinError(f"train.backbone_dtype={t.backbone_dtype} sets a pretrained backbone's dtype: it needs model.backbone "
                       "(vin's own DiT trains in float32, with bf16 autocast on CUDA)")  # fmt: skip
    if t.lora_rank > 0 and not m.backbone:
        raise VinError("train.lora_rank adapts a pretrained backbone's attention: it needs model.backbone (a wan folder)")
    if m.backbone and t.sample_every > 0:
        raise VinError("train.sample_every: samples of a wan run need prompt embeddings; set it to 0 and sample the "
                       "exported run with vin generate --prompt-embeds")  # fmt: skip
    if m.num_classes > 0 and d.source == "folder" and d.labels != "folders":
        raise VinError("a class-conditional model (model.num_classes > 0) on a video folder needs data.labels=folders")
    if t.windows_per_step < max(t.chunk_counts):
        raise VinError(f"train.windows_per_step={t.windows_per_step} must be at least max(train.chunk_counts)={max(t.chunk_counts)}")
    if 0 < m.full_frames < max(t.chunk_counts) * m.chunk_frames:
        raise VinError(f"model.full_frames={m.full_frames} is shorter than the longest training clip "
                       f"(max(train.chunk_counts) x model.chunk_frames = {max(t.chunk_counts) * m.chunk_frames}); raise it")  # fmt: skip
    for n in t.chunk_counts:
        if (t.windows_per_step // n) % world:
            raise VinError(f"train.windows_per_step={t.windows_per_step} gives {t.windows_per_step // n} clips of {n} chunks, "
                           f"which {world} ranks cannot share evenly; use a multiple of {world * max(t.chunk_counts)}")  # fmt: skip
    return config


def make_data(config: Config, device: torch.device):
    """The clip source `config.data` describes, and the autoencoder (or None) its latents come from.

    A source has `batch(generator, clips, frames, shard) -> (x0 (B, C, T, H, W), condition or None)`.
    """
    d = config.data
    if d.source == "synthetic":
        return SyntheticVideos(d), None
    from .data.cache import ShardCache
    from .data.video_folder import VideoFolder

    cache = ShardCache(Path(d.cache_dir).expanduser()) if d.cache_dir else None
    longest = max(config.train.chunk_counts) * config.model.chunk_frames
    ae = None
    if d.autoencoder:
        from .data.latent import Autoencoder, LatentVideos

        ae = Autoencoder(d.autoencoder, device)
        folder = VideoFolder(d, ae.pixel_frames(longest), cache, config.model.text_dim, bool(config.model.backbone))
        source = LatentVideos(folder, ae, cache)
    else:
        source = folder = VideoFolder(d, longest, cache, config.model.text_dim)
    m = config.model
    from .data.captions import is_text_captions

    if d.captions and is_text_captions(d.captions):
        encode_captions(config, folder, device)
    if m.backbone and config.train.label_dropout > 0 and folder.null_caption is None:
        raise VinError("train.label_dropout > 0 on a wan backbone drops captions to the empty prompt: add its "
                       "embedding to data.captions under the key '' (or set train.label_dropout=0)")  # fmt: skip
    if m.num_classes > 0 and m.num_classes != len(folder.classes):
        raise VinError(f"model.num_classes={m.num_classes} but {folder.root} has {len(folder.classes)} class folders")
    return source, ae


def encode_captions(config: Config, folder, device: torch.device) -> None:
    """data.captions as text: every caption not in the cache encoded once by the backbone's text encoder (rank 0;
    the others wait), then read from disk batch by batch. The cache is data.cache_dir/captions (or, without
    one, train.out_dir/caption-cache), keyed by the text and the encoder."""
    import gc

    from .data.captions import CaptionCache, read_caption_file

    table = read_caption_file(config.data.captions)
    d = config.data
    root = Path(d.cache_dir).expanduser() / "captions" if d.cache_dir else Path(config.train.out_dir) / "caption-cache"
    encoder = registry.text_encoder(config.model, device)
    cache, length = CaptionCache(root, encoder.encoder_id), encoder.length
    texts = [*table.values(), ""]
    if int(os.environ.get("RANK", "0")) == 0 and cache.missing(texts):
        cache.fill(texts, encoder.encode)
    del encoder  # the text encoder (11 GB for Wan's UMT5-XXL) is not kept for training
    gc.collect()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # the other ranks read what rank 0 wrote
    folder.use_text_captions(table, cache, length)


def drop_condition(cond: torch.Tensor | None, drop: torch.Tensor, config: Config, null: torch.Tensor | None = None) -> torch.Tensor | None:
    """Replaces dropped rows by the null condition (for classifier-free guidance); None if the model is unconditional.
    `null`: the empty prompt's token embeddings (L, D) that a Wan backbone's dropped captions become."""
    if config.model.backbone and cond is not None:
        return cond if null is None else torch.where(drop[:, None, None], null.to(cond), cond)
    if config.model.num_classes > 0 and cond is not None:
        return torch.where(drop, torch.full_like(cond, config.model.num_classes), cond)
    if config.model.text_dim > 0 and cond is not None:
        return torch.where(drop[:, None], torch.full_like(cond, float("nan")), cond)  # NaN rows: the null embedding
    return None


PROBE_CLIPS, PROBE_CHUNKS, PROBE_SEED = 4, 4, 20261201


def probe_clips(config: Config, data) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The fixed clips whose loss gap the log records (`vin.metrics.probe`) and their condition (a Wan
    backbone's captions; None otherwise), or None for a model without a VIN.

    Procedural data: held-out seeds (training seeds start at 2**20), clips of 4 chunks. A video folder has
    no held-out split: the same 4 draws every time, from a generator of their own (training's streams are
    untouched), of the longest training clip (at most 4 chunks; at least 2, or no probe).
    """
    m = config.model
    if m.vin_tokens == 0 or m.full_frames > 0:
        return None
    if isinstance(data, SyntheticVideos):
        return torch.stack([data.clip(seed, PROBE_CHUNKS * m.chunk_frames)[0] for seed in range(200, 200 + PROBE_CLIPS)]), None
    chunks = min(PROBE_CHUNKS, max(config.train.chunk_counts))
    if chunks < 2:
        return None
    clips, cond = data.batch(torch.Generator().manual_seed(PROBE_SEED), PROBE_CLIPS, chunks * m.chunk_frames)
    return clips, (cond if m.backbone else None)


def probe_row(ema: VideoModel, probe: tuple[torch.Tensor, torch.Tensor | None], step: int) -> dict:
    """The log row of the loss gap at sigma 0.85: is the VIN read? (0: the DiT ignores what it reads)."""
    clips, labels = probe
    gap = loss_gap(ema, clips, PROBE_SIGMA, torch.Generator().manual_seed(PROBE_SEED), labels=labels)
    return {"step": step, "loss_gap": gap["gap"], "loss_gap_sigma": PROBE_SIGMA, "loss_z_global": gap["global"],
            "loss_z_own_chunk": gap["own_chunk"], "loss_z_other_clip": gap["other_clip"]}  # fmt: skip


def _atomic_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _resume_point(config: Config, out_dir: Path) -> Path | None:
    tc = config.train
    if tc.resume == "auto":
        found = list_checkpoints(out_dir)
        return found[-1] if found else None
    if tc.resume:
        return Path(tc.resume).expanduser()
    if list_checkpoints(out_dir):
        raise VinError(f"{out_dir} already holds a run's checkpoints; continue it with train.resume=auto, "
                       "or start fresh in another train.out_dir")  # fmt: skip
    return None


def train(config: Config, progress: bool = True) -> Path:
    """Trains a model as `config` says (from scratch, or resumed) and returns the output directory.

    Under torchrun (`torchrun --nproc-per-node R -m vin train CONFIG`) it trains with
    DistributedDataParallel: every rank draws the same global batch (seeds, times, noise) and renders
    or decodes and runs only its share, so R ranks compute what one process computes on the whole
    batch. Rank 0 writes the checkpoints and logs.
    """
    config = check_config(config, int(os.environ.get("WORLD_SIZE", "1")))  # the model resolved: one config from here on
    tc = config.train
    if tc.init_from:
        check_init_from(config)
    if tc.threads > 0:
        torch.set_num_threads(check_threads(tc.threads, "train.threads"))
    device = resolve_device(tc.device)
    out_dir = Path(tc.out_dir)
    resume_from = _resume_point(config, out_dir)
    group = init_from_env(str(device))
    device = group.device if group.distributed else device
    data = None
    try:
        data, autoencoder = make_data(config, device)
        with StopRequest() as stop_request:
            return _run(config, group, device, out_dir, resume_from, data, autoencoder, progress, stop_request)
    finally:
        if data is not None and hasattr(data, "close"):
            data.close()
        shutdown()


def _run(config, group, device, out_dir, resume_from, data, autoencoder, progress, stop_request: StopRequest) -> Path:
    """The training loop: steps from the run's start to train.steps (or train.stop_at, or a signal)."""
    run = _Run(config, group, device, out_dir, resume_from, data, autoencoder)
    tc = config.train
    probe = probe_clips(config, data) if run.main else None
    sample_frames = tc.sample_frames or 2 * max(tc.chunk_counts) * config.model.chunk_frames
    run.start = time.perf_counter()
    bar = tqdm(range(run.start_step + 1, run.last_step + 1), initial=run.start_step, total=tc.steps, desc="training",
               disable=not (progress and run.main), dynamic_ncols=True)  # fmt: skip
    end_step, interrupted = run.last_step, None
    try:
        run.open_log()
        for step in bar:
            stats = run.optimizer_step(step)
            bar.set_postfix(loss=f"{stats['loss_avg50']:.4f}", it_s=f"{(step - run.start_step) / (time.perf_counter() - run.start):.2f}")
            run.after_step(step, stats, probe, sample_frames)
            interrupted = stop_request.agreed(group) if step < run.last_step else None
            if interrupted is not None:  # SIGTERM / SIGINT: save this step (unless just saved) and stop
                if run.main and step % tc.save_every:
                    run.saved = (step, run.save(step))
                end_step = step
                break
        if group.distributed:
            torch.distributed.barrier()  # every rank done (rank 0 saves last) before the group goes away
    finally:
        if run.log is not None:
            run.log.close()
    if run.main:
        _atomic_text(out_dir / "summary.json", json.dumps(run.summary(end_step, interrupted), indent=2) + "\n")
    return out_dir


class _Run:
    """One run's state: the model and its EMA (fresh, from train.init_from, or resumed), the optimizer, the
    random streams, the log; one optimizer step at a time, then logging, saving, probing and sampling."""

    def __init__(self, config: Config, group, device: torch.device, out_dir: Path, resume_from: Path | None, data, autoencoder):
        self.config, self.tc, self.group, self.device = config, config.train, group, device
        self.out_dir, self.resume_from, self.data = out_dir, resume_from, data
        self.main = group.rank == 0
        tc = self.tc
        self._build_model(autoencoder)
        self.objective = Objective(config.model.objective, tc.timestep_sampling, tc.logit_mean, tc.logit_std, config.model.flow_shift)
        trained = [p for p in self.model.parameters() if p.requires_grad]  # all of the own DiT; a backbone kind's adapter
        self.optimizer = torch.optim.AdamW(trained, lr=tc.lr, betas=(0.9, 0.99), weight_decay=tc.weight_decay)
        self.data_gen = torch.Generator().manual_seed(tc.seed)
        self.noise_gen = torch.Generator().manual_seed(tc.seed + 1)
        self.generators = {"data": self.data_gen, "noise": self.noise_gen}
        self.start_step, self.recent, self.elapsed0, self.clips_seen = 0, [], 0.0, 0
        self.folder = getattr(data, "folder", data) if hasattr(data, "report") else None  # a VideoFolder, or None
        if resume_from is not None:
            self._resume()
        if tc.activation_checkpointing:
            self.model.checkpoint_activations()
        ids = [device.index] if device.type == "cuda" else None
        self.net = DistributedDataParallel(self.model, device_ids=ids) if group.distributed else self.model
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
        self.last_step = min(tc.steps, tc.stop_at) if tc.stop_at > 0 else tc.steps
        if self.start_step >= self.last_step:
            raise VinError(f"{resume_from} is at step {self.start_step}, which is already train.steps={tc.steps}"
                           f"{f' / train.stop_at={tc.stop_at}' if tc.stop_at else ''}; raise train.steps to train on")  # fmt: skip
        self.saved: tuple[int, Path] | None = (self.start_step, resume_from) if resume_from is not None else None
        self.clips_before, self.data_seconds, self.start = self.clips_seen, 0.0, time.perf_counter()
        self.log = None

    def _build_model(self, autoencoder) -> None:
        model = build_model(self.config, self.device)
        if self.tc.init_from and self.resume_from is None:  # a resumed run's weights come from its checkpoint
            load_init_weights(model, self.config)
        self.model = model.to(self.device).train()
        self.ema = copy_for_ema(self.model)  # the EMA starts from the (loaded) weights
        self.latent = None
        if autoencoder is not None:
            from .data.latent import LatentDecoder, LatentSpace

            self.latent = LatentSpace.of(autoencoder)
            self.ema.latent_decoder = LatentDecoder(self.latent, autoencoder=autoencoder)  # sample videos are decoded

    def _resume(self) -> None:
        state = load_state(self.resume_from, self.config, self.model, self.ema, self.optimizer, self.generators)
        self.start_step, self.recent = state["step"], state["recent_losses"]
        self.elapsed0, self.clips_seen = state["elapsed_s"], state["clips"]
        if self.folder is not None:
            names = {v.name: i for i, v in enumerate(self.folder.videos)}
            for name, reason in state.get("broken_videos", {}).items():  # known bad: skipped without trying again
                if name in names:
                    self.folder.mark_bad(names[name], reason)

    def open_log(self) -> None:
        """Rank 0: train.yaml, and log.jsonl cut back to the resumed step (rows after it belong to no checkpoint);
        the half-written checkpoint folders of a run killed while saving are removed."""
        if not self.main:
            return
        remove_unfinished(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.config, self.out_dir / "train.yaml")
        log_path = self.out_dir / "log.jsonl"
        kept = [r for r in read_log(log_path) if r.get("step", 0) <= self.start_step] if self.resume_from else []
        _atomic_text(log_path, "".join(json.dumps(r) + "\n" for r in kept))
        self.log = open(log_path, "a")

    def write_log(self, row: dict) -> None:
        self.log.write(json.dumps(row) + "\n")
        self.log.flush()

    def micro_batch(self, micro: int, step: int) -> tuple[float, int]:
        """Forward and backward of one batch of train.windows_per_step windows: (its loss over all ranks, chunks per clip)."""
        tc, group, data_gen, noise_gen = self.tc, self.group, self.data_gen, self.noise_gen
        n = tc.chunk_counts[int(torch.randint(len(tc.chunk_counts), (1,), generator=data_gen))]
        clips = max(1, tc.windows_per_step // n)  # the global batch
        share = slice(group.rank * clips // group.world, (group.rank + 1) * clips // group.world)
        t_data = time.perf_counter()
        x0, cond = self.data.batch(data_gen, clips, n * self.config.model.chunk_frames, share)
        self.data_seconds += time.perf_counter() - t_data
        drop = torch.rand(clips, generator=data_gen)[share] < tc.label_dropout
        cond = drop_condition(cond, drop, self.config, getattr(self.folder, "null_caption", None))
        t, noise = self.objective.draw((clips,) + tuple(x0.shape[1:]), noise_gen)
        t = self.objective.given_times(t, n, tc.init_prob, noise_gen)  # (clips,) or (clips, n): continuations
        sync = self.net.no_sync() if group.distributed and micro < tc.grad_accum - 1 else contextlib.nullcontext()
        with sync:
            with self.autocast:
                loss = self.objective.loss(self.net, x0.to(self.device), cond.to(self.device) if cond is not None else None,
                                           t=t[share], noise=noise[share])  # fmt: skip
            reported = loss.detach().clone()
            if group.distributed:
                torch.distributed.all_reduce(reported)
                reported /= group.world
            if not math.isfinite(reported.item()):
                raise self.stop(step, f"the loss is {reported.item()}")
            (loss / tc.grad_accum).backward()
        self.clips_seen += clips
        return reported.item(), n

    def optimizer_step(self, step: int) -> dict:
        """train.grad_accum micro-batches, clipping, the optimizer and the EMA; the log row's figures."""
        tc = self.tc
        lr = tc.lr * lr_factor(step, tc)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        total, chunk_counts = 0.0, []
        for micro in range(tc.grad_accum):
            loss, n = self.micro_batch(micro, step)
            total += loss / tc.grad_accum
            chunk_counts.append(n)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"], tc.grad_clip)
        if not math.isfinite(float(grad_norm)):
            raise self.stop(step, f"the gradient norm is {float(grad_norm)}")
        self.optimizer.step()
        update_ema(self.ema, self.model, min(tc.ema_decay, (1 + step) / (10 + step)))
        self.recent = (self.recent + [total])[-50:]
        return {"step": step, "loss": total, "loss_avg50": sum(self.recent) / len(self.recent), "grad_norm": float(grad_norm),
                "lr": lr, "chunks": chunk_counts[0] if len(chunk_counts) == 1 else chunk_counts,
                "elapsed_s": round(self.elapsed0 + time.perf_counter() - self.start, 2)}  # fmt: skip

    def after_step(self, step: int, row: dict, probe: tuple | None, sample_frames: int) -> None:
        """Rank 0: the log row every train.log_every steps, a checkpoint (and probe row) every train.save_every,
        a sample video every train.sample_every; each also at the last step."""
        tc, last = self.tc, step == self.last_step
        if not self.main:
            return
        if step % tc.log_every == 0 or last:
            self.write_log(row)
        if step % tc.save_every == 0 or last:
            self.saved = (step, self.save(step))
            if probe is not None:
                self.write_log(probe_row(self.ema, probe, step))
        if tc.sample_every > 0 and (step % tc.sample_every == 0 or last):
            (self.out_dir / "samples").mkdir(exist_ok=True)
            write_sample(self.ema, self.out_dir / "samples" / f"step_{step:07d}.mp4", sample_frames, tc.sample_steps, tc.seed)

    def save(self, step: int) -> Path:
        """The exported EMA model, a resumable checkpoint, the loss plot and the data report."""
        self.ema.save(self.out_dir)
        if self.latent is not None:  # what decoding the exported model's samples needs
            self.latent.write(self.out_dir)
        extra = {"recent_losses": self.recent, "elapsed_s": self.elapsed0 + time.perf_counter() - self.start,
                 "clips": self.clips_seen, "broken_videos": dict(self.folder.broken) if self.folder is not None else {}}  # fmt: skip
        path = save_state(self.out_dir, step, self.model, self.ema, self.optimizer, self.generators, self.config, extra,
                          self.tc.keep_checkpoints)  # fmt: skip
        self.log.flush()
        plot_loss(self.out_dir / "log.jsonl", self.out_dir / "loss.png")
        if self.folder is not None:
            _atomic_text(self.out_dir / "data_report.json", json.dumps(self.data.report(), indent=1) + "\n")
        return path

    def stop(self, step: int, what: str) -> VinError:
        """The error that ends a diverged run, naming the last good checkpoint (logged first); it says to resume
        only when there is a checkpoint to resume from."""
        if self.log is not None:
            self.write_log({"step": step, "stopped": what})
        fix = f"Lower train.lr (now {self.tc.lr:g}) or raise train.warmup_steps"
        if self.saved is None:
            return VinError(f"training stopped at step {step}: {what}; no checkpoint was written yet. {fix}, then start "
                            "the run again (the same command: there is nothing to resume)")  # fmt: skip
        return VinError(f"training stopped at step {step}: {what}; the last good checkpoint is {self.saved[1]} (step "
                        f"{self.saved[0]}), and the exported model in {self.out_dir} is its EMA. {fix}, then continue "
                        "with train.resume=auto")  # fmt: skip

    def summary(self, end_step: int, interrupted: int | None) -> dict:
        """summary.json: how far the run got, how fast, where it came from and why it stopped."""
        tc, seconds = self.tc, time.perf_counter() - self.start
        summary = {"steps": end_step, "of_steps": tc.steps, "params": sum(p.numel() for p in self.model.parameters()),
                   "device": str(self.device), "train_seconds": round(self.elapsed0 + seconds, 1),
                   "this_run_seconds": round(seconds, 1), "data_seconds": round(self.data_seconds, 2),
                   "clips_per_s": round((self.clips_seen - self.clips_before) / seconds, 3),
                   "final_loss_avg50": sum(self.recent) / len(self.recent), "ranks": self.group.world,
                   "torch": torch.__version__, "resumed_from": str(self.resume_from) if self.resume_from else None,
                   "stopped_early": end_step < tc.steps,
                   "stopped_by": signal.Signals(interrupted).name if interrupted else None}  # fmt: skip
        if self.folder is not None:
            summary["data"] = {k: v for k, v in self.data.report().items() if k not in ("skipped_files", "ignored_files")}
        return summary
