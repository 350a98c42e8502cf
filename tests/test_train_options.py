"""Training options: latent space through a local autoencoder, text captions, activation checkpointing, LR schedule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vin.config import TrainConfig, load_config
from vin.errors import VinError
from vin.checkpoint import load_model
from vin.train import lr_factor, train

from .conftest import tiny_model

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


def tiny_autoencoder(folder: Path, kind: str = "AutoencoderKL") -> Path:
    """A randomly initialised diffusers autoencoder saved as save_pretrained writes it (2x spatial, 4 channels)."""
    import diffusers

    torch.manual_seed(0)
    if kind == "AutoencoderKL":
        vae = diffusers.AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                                      up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, layers_per_block=1,
                                      norm_num_groups=4, sample_size=32)  # fmt: skip
    else:
        vae = diffusers.AutoencoderKLCogVideoX(block_out_channels=(8, 16), down_block_types=("CogVideoXDownBlock3D",) * 2,
                                               up_block_types=("CogVideoXUpBlock3D",) * 2, latent_channels=4,
                                               layers_per_block=1, norm_num_groups=4, sample_height=32, sample_width=32)  # fmt: skip
    vae.save_pretrained(folder)
    return folder


def latent_overrides(videos: Path, ae: Path, out: Path, *extra: str) -> list[str]:
    return ["data.source=folder", f"data.root={videos}", f"data.autoencoder={ae}", "data.height=32", "data.width=32",
            "model.sample_size=16", "model.in_channels=4", "train.windows_per_step=2", "train.chunk_counts=[1,2]",
            "train.steps=2", f"train.out_dir={out}", "train.sample_every=2", "train.sample_frames=8", "train.sample_steps=2",
            *extra]  # fmt: skip


def test_training_in_an_autoencoders_latent_space_with_a_latent_cache(videos, tmp_path):
    ae = tiny_autoencoder(tmp_path / "vae")
    out = tmp_path / "run"
    config = load_config(TINY, latent_overrides(videos, ae, out, f"data.cache_dir={tmp_path / 'cache'}", "data.crop=center"))
    train(config, progress=False)
    model = load_model(out)
    assert model.config.in_channels == 4 and model.config.sample_size == 16
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["latent_cache"] and summary["data"]["cache"]["misses"] >= 1
    from vin.videos import read_video

    assert read_video(out / "samples" / "step_0000002.mp4").shape == (8, 128, 128, 3)  # decoded to 32x32, shown 4x
    shapes = [np.load(p, mmap_mode="r").shape for p in (tmp_path / "cache").rglob("*.npy")]
    assert any(len(s) == 4 and s[1:] == (4, 16, 16) for s in shapes)  # per-video latents (N, C, h, w) are cached


def test_training_on_frames_of_another_aspect(videos, tmp_path):
    """[height, width] frames (Wan's 832x480 in small): clips cover 32x48 and are cropped, latents of 16x24 are
    cached, and the run samples that size by default."""
    from vin.generation.api import generate

    ae = tiny_autoencoder(tmp_path / "vae")
    out = tmp_path / "run"
    overrides = latent_overrides(videos, ae, out, f"data.cache_dir={tmp_path / 'cache'}", "data.crop=center", "data.width=48",
                                 "model.sample_size=[16,24]", "train.sample_every=0")  # fmt: skip
    train(load_config(TINY, overrides), progress=False)
    model = load_model(out)
    assert tuple(model.config.sample_size) == (16, 24)
    assert generate(model, 8, 2, 0).video.shape == (8, 32, 48, 3)
    shapes = [np.load(p, mmap_mode="r").shape for p in (tmp_path / "cache").rglob("*.npy")]
    assert any(len(s) == 4 and s[1:] == (4, 16, 24) for s in shapes)  # the centre crop's latents
    with pytest.raises(VinError, match=r"data.height/width \(32x32\) must be model.sample_size \(\[16, 24\]\) times .* 32x48"):
        train(load_config(TINY, latent_overrides(videos, ae, out, "model.sample_size=[16,24]")), progress=False)


def test_latent_geometry_is_checked_before_any_work(videos, tmp_path):
    ae = tiny_autoencoder(tmp_path / "vae")
    with pytest.raises(VinError, match=r"must be model.sample_size \(8\) times the autoencoder's spatial factor 2"):
        train(load_config(TINY, latent_overrides(videos, ae, tmp_path / "o", "model.sample_size=8")), progress=False)
    with pytest.raises(VinError, match="model.in_channels=3 must equal the autoencoder's latent channels"):
        train(load_config(TINY, latent_overrides(videos, ae, tmp_path / "o", "model.in_channels=3")), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VinError, match="has no config.json"):
        train(load_config(TINY, latent_overrides(videos, tmp_path / "empty", tmp_path / "o")), progress=False)


def test_video_autoencoder_compresses_time(videos, tmp_path):
    from vin.data.latent import Autoencoder

    path = tiny_autoencoder(tmp_path / "vae", "AutoencoderKLCogVideoX")
    out = tmp_path / "run"  # clips are encoded as drawn: 7 frames -> 4 latent frames, 15 -> 8
    train(load_config(TINY, latent_overrides(videos, path, out, "train.steps=1", "train.sample_every=0")), progress=False)
    assert json.loads((out / "summary.json").read_text())["data"]["latent_cache"] is False
    ae = Autoencoder(path)
    assert (ae.channels, ae.spatial, ae.temporal) == (4, 2, 2)
    frames = ae.pixel_frames(4)
    x = torch.rand(1, 3, frames, 32, 32) * 2 - 1
    z = ae.encode(x)
    assert frames == 7 and z.shape == (1, 4, 4, 16, 16)
    decoded = ae.decode(z)  # an even latent length decodes to 2 frames each (CogVideoX keeps a lone first frame only for odd ones)
    assert decoded.shape[:2] == (1, 3) and decoded.shape[2] >= 7 and decoded.shape[3:] == (32, 32)


def test_text_captions_condition_the_model(videos, tmp_path):
    from safetensors.torch import save_file

    captions = tmp_path / "captions.safetensors"
    save_file({"real/carphone.mp4": torch.randn(3, 8), "real/carphone_distorted.mp4": torch.randn(8)}, captions)
    out = tmp_path / "run"
    overrides = ["data.source=folder", f"data.root={videos}", f"data.captions={captions}", "model.text_dim=8",
                 "train.windows_per_step=2", "train.chunk_counts=[1]", "train.steps=2", f"train.out_dir={out}"]  # fmt: skip
    train(load_config(TINY, overrides), progress=False)
    model = load_model(out)
    assert model.config.text_dim == 8
    t = torch.full((2,), 500.0)
    a, b = torch.randn(2, 8), torch.randn(2, 8)
    assert not torch.allclose(model.condition(t, a), model.condition(t, b))  # the embedding reaches the model
    nulls = model.condition(t, torch.full((2, 8), float("nan")))
    torch.testing.assert_close(nulls, model.condition(t, None))  # NaN rows: the learned null condition
    with pytest.raises(VinError, match="model.text_dim > 0 needs text embeddings"):
        train(load_config(TINY, ["model.text_dim=8", f"train.out_dir={tmp_path / 'x'}"]), progress=False)


def test_activation_checkpointing_gives_the_same_gradients():
    from vin.diffusion.objective import Objective

    x = torch.rand(2, 3, 8, 16, 16) * 2 - 1
    grads = []
    for checkpointed in (False, True):
        model = tiny_model().train()
        if checkpointed:
            model.checkpoint_activations()
        loss = Objective("flow").loss(model, x, None, torch.Generator().manual_seed(0))
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])


def test_learning_rate_warm_up_then_cosine():
    tc = TrainConfig(steps=110, warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(1, tc) == pytest.approx(0.1) and lr_factor(10, tc) == pytest.approx(1.0)
    assert lr_factor(60, tc) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(110, tc) == pytest.approx(0.1)
    assert lr_factor(50, TrainConfig(steps=110, warmup_steps=10)) == 1.0  # constant after warm-up
