"""The training loop: VIN and DiT trained end to end on the denoising loss.

Plain PyTorch: AdamW with linear warm-up, gradient clipping, an EMA of the weights (the EMA is what
gets saved and sampled), clips of 1, 2 or 4 chunks mixed as the paper does, bf16 autocast on CUDA.
The output directory is a loadable checkpoint at every save: config.json and
diffusion_pytorch_model.safetensors (EMA weights), train.yaml (the full config), log.jsonl
(one line per logged step) and summary.json.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .config import Config, save_config
from .data.synthetic import SyntheticVideos
from .diffusion.objective import Objective
from .errors import VinError
from .model.vin import VINModel
from .parallel import init_from_env, shutdown


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VinError(f"device {name!r} was asked for but CUDA is not available; use device=cpu")
    return torch.device(name)


def build_model(config: Config) -> VINModel:
    """A freshly initialised model, seeded from train.seed without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        return VINModel(**asdict(config.model))


def save_checkpoint(model: VINModel, out_dir: Path) -> None:
    """Writes config.json + diffusion_pytorch_model.safetensors so that no half-written file is ever visible."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".tmp-") as tmp:
        model.save_pretrained(tmp)
        for name in os.listdir(tmp):
            os.replace(os.path.join(tmp, name), out_dir / name)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)


def check_config(config: Config, world: int = 1) -> None:
    m, d, t = config.model, config.data, config.train
    if (d.height, d.width) != (m.sample_size, m.sample_size):
        raise VinError(f"data.height/width ({d.height}x{d.width}) must equal model.sample_size ({m.sample_size})")
    if not t.chunk_counts or min(t.chunk_counts) < 1:
        raise VinError(f"train.chunk_counts must be a non-empty list of positive integers, got {t.chunk_counts}")
    if t.windows_per_step < max(t.chunk_counts):
        raise VinError(f"train.windows_per_step={t.windows_per_step} must be at least max(train.chunk_counts)={max(t.chunk_counts)}")
    if t.steps < 1:
        raise VinError(f"train.steps must be positive, got {t.steps}")
    for n in t.chunk_counts:
        if (t.windows_per_step // n) % world:
            raise VinError(f"train.windows_per_step={t.windows_per_step} gives {t.windows_per_step // n} clips of {n} chunks, "
                           f"which {world} ranks cannot share evenly; use a multiple of {world * max(t.chunk_counts)}")  # fmt: skip


def train(config: Config, progress: bool = True) -> Path:
    """Trains a model from scratch as `config` says and returns the checkpoint directory.

    Under torchrun (`torchrun --nproc-per-node R -m vin train CONFIG`) it trains with
    DistributedDataParallel: every rank draws the same global batch (seeds, times, noise) and renders
    and runs only its share, so R ranks compute what one process computes on the whole batch. Rank 0
    writes the checkpoint and logs.
    """
    tc = config.train
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    device = resolve_device(tc.device)
    check_config(config, int(os.environ.get("WORLD_SIZE", "1")))
    group = init_from_env(str(device))
    device = group.device if group.distributed else device
    main = group.rank == 0
    out_dir = Path(tc.out_dir)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, out_dir / "train.yaml")

    model = build_model(config).to(device).train()
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if group.distributed else model
    objective = Objective(config.model.objective, tc.timestep_sampling, tc.logit_mean, tc.logit_std)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=(0.9, 0.99), weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, tc.warmup_steps)))
    data = SyntheticVideos(config.data)
    data_gen = torch.Generator().manual_seed(tc.seed)
    noise_gen = torch.Generator().manual_seed(tc.seed + 1)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    params = sum(p.numel() for p in model.parameters())

    log = open(out_dir / "log.jsonl", "w") if main else None
    start = time.perf_counter()
    bar = tqdm(range(1, tc.steps + 1), desc="training", disable=not (progress and main), dynamic_ncols=True)
    recent: list[float] = []
    try:
        for step in bar:
            n = tc.chunk_counts[int(torch.randint(len(tc.chunk_counts), (1,), generator=data_gen))]
            clips = max(1, tc.windows_per_step // n)  # the global batch
            share = slice(group.rank * clips // group.world, (group.rank + 1) * clips // group.world)
            x0, labels = data.batch(data_gen, clips, n * config.model.chunk_frames, share)
            drop = torch.rand(clips, generator=data_gen)[share] < tc.label_dropout
            if config.model.num_classes > 0:
                labels = torch.where(drop, torch.full_like(labels, config.model.num_classes), labels).to(device)
            else:
                labels = None
            t, noise = objective.draw((clips,) + tuple(x0.shape[1:]), noise_gen)
            with autocast:
                loss = objective.loss(net, x0.to(device), labels, t=t[share], noise=noise[share])
            reported = loss.detach().clone()
            if group.distributed:
                torch.distributed.all_reduce(reported)
                reported /= group.world
            if not math.isfinite(reported.item()):
                raise VinError(f"loss became {reported.item()} at step {step}; lower train.lr or raise train.warmup_steps")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            scheduler.step()
            update_ema(ema, model, min(tc.ema_decay, (1 + step) / (10 + step)))

            recent = (recent + [reported.item()])[-50:]
            elapsed = time.perf_counter() - start
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", it_s=f"{step / elapsed:.2f}")
            if main and (step % tc.log_every == 0 or step == tc.steps):
                row = {"step": step, "loss": reported.item(), "loss_avg50": sum(recent) / len(recent),
                       "grad_norm": float(grad_norm), "lr": scheduler.get_last_lr()[0], "chunks": n,
                       "elapsed_s": round(elapsed, 2)}  # fmt: skip
                log.write(json.dumps(row) + "\n")
                log.flush()
            if main and (step % tc.save_every == 0 or step == tc.steps):
                save_checkpoint(ema, out_dir)
        if group.distributed:
            torch.distributed.barrier()  # every rank done (rank 0 saves last) before the group goes away
    finally:
        if log is not None:
            log.close()
        shutdown()
    summary = {"steps": tc.steps, "params": params, "device": str(device), "train_seconds": round(time.perf_counter() - start, 1),
               "final_loss_avg50": sum(recent) / len(recent), "ranks": group.world, "torch": torch.__version__}  # fmt: skip
    if main:
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out_dir
