"""Generating with a model trained in an autoencoder's latent space: latents are decoded to pixel videos."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import vin
from vin.cli import main
from vin.config import load_config
from vin.data.latent import LATENT_FILE, Autoencoder, LatentDecoder, LatentSpace
from vin.diffusion.sampling import denoise
from vin.errors import VinError
from vin.generation.strategies import GenerationOptions, plan
from vin.train import train

from .test_train_options import TINY, latent_overrides, tiny_autoencoder
from .videos import make_video_folder


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny model trained 2 steps on 16x16 clips in an image VAE's 8x8 latent space: (run folder, autoencoder)."""
    root = tmp_path_factory.mktemp("latent")
    make_video_folder(root / "videos")
    ae = tiny_autoencoder(root / "vae")
    out = root / "run"
    overrides = latent_overrides(root / "videos", ae, out, "data.height=16", "data.width=16", "model.sample_size=8",
                                 "train.sample_every=0")  # fmt: skip
    train(load_config(TINY, overrides), progress=False)
    return out, ae


def test_a_latent_checkpoint_generates_pixel_videos(latent_run, tmp_path):
    out, ae = latent_run
    record = json.loads((out / LATENT_FILE).read_text())
    assert record["autoencoder"] == str(ae.resolve()) and record["kind"] == "AutoencoderKL"
    assert (record["latent_channels"], record["spatial_factor"], record["scaling_factor"]) == (4, 2, 0.18215)
    model = vin.load_model(out)
    assert model.config.sample_size == 8 and model.latent_decoder is not None
    result = vin.generate(model, frames=8, steps=2, seed=1)
    assert result.video.dtype == torch.uint8 and result.video.shape == (8, 16, 16, 3)  # 8x8 latents -> 16x16 pixels
    again = vin.generate(model, frames=8, steps=2, seed=1, strategy="autoregressive")
    assert again.video.shape == (8, 16, 16, 3)

    video = tmp_path / "v.npy"
    cli = CliRunner().invoke(main, ["generate", "--checkpoint", str(out), "--frames", "8", "--steps", "2", "--seed", "1",
                                    "--out", str(video), "--json", "--quiet"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    summary = json.loads(cli.output)
    assert (summary["frames"], summary["height"], summary["width"]) == (8, 16, 16)
    np.testing.assert_array_equal(np.load(video), result.video.numpy())  # the same seed, the same video


def test_latents_are_not_clamped_pixels_are():
    noise = torch.zeros(1, 4, 2, 2, 2)
    for objective, predict in (("flow", lambda x, t, i: torch.full_like(x, -3.0)),  # velocity: x0 = noise + 3
                               ("epsilon", lambda x, t, i: torch.full_like(x, -3.0))):  # fmt: skip
        latents = denoise(objective, 4, noise, predict, progress=False, clip=False)
        pixels = denoise(objective, 4, noise, predict, progress=False)
        assert latents.max() > 1.5 and pixels.max() <= 1.0, objective


def test_only_pixel_models_are_planned_with_clamping(latent_run):
    model = vin.load_model(latent_run[0])
    assert plan(model, "vin", GenerationOptions(frames=8)).clip is False
    model.latent_decoder = None
    assert plan(model, "vin", GenerationOptions(frames=8)).clip is True


def test_decode_inverts_the_encode_scaling_and_shift(tmp_path):
    import diffusers

    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, layers_per_block=1,
                                  norm_num_groups=4, sample_size=16, scaling_factor=0.5, shift_factor=0.3)  # fmt: skip
    vae.save_pretrained(tmp_path / "vae")
    x = torch.rand(1, 3, 20, 16, 16) * 2 - 1  # 20 frames: more than one decoding batch
    frames = x.transpose(1, 2).flatten(0, 1)
    with torch.no_grad():
        mean = vae.encode(frames).latent_dist.mean  # (20, 4, 8, 8)
        expected = vae.decode(mean).sample.clamp(-1, 1).unflatten(0, (1, -1)).transpose(1, 2)
    z = Autoencoder(tmp_path / "vae").encode(x)
    torch.testing.assert_close(z, ((mean - 0.3) * 0.5).unflatten(0, (1, -1)).transpose(1, 2), atol=1e-5, rtol=1e-5)
    space = LatentSpace.of_folder(tmp_path / "vae")
    assert (space.scaling_factor, space.shift_factor) == (0.5, 0.3)
    torch.testing.assert_close(LatentDecoder(space)(z), expected, atol=1e-5, rtol=1e-5)
    # the factors recorded at training win over the folder's config: latents scaled by 0.25 decode with 0.25
    recorded = dataclasses.replace(space, scaling_factor=0.25)
    z_quarter = ((mean - 0.3) * 0.25).unflatten(0, (1, -1)).transpose(1, 2)
    torch.testing.assert_close(LatentDecoder(recorded)(z_quarter), expected, atol=1e-5, rtol=1e-5)


def test_a_missing_or_different_autoencoder_fails_clearly(latent_run, tmp_path):
    out, ae = latent_run
    model = vin.load_model(out, autoencoder=tmp_path / "gone")
    with pytest.raises(VinError, match=r"needs the autoencoder given to decode them, but '.*gone' does not exist; "
                                       r"give the autoencoder's folder with --autoencoder DIR"):  # fmt: skip
        vin.generate(model, frames=8, steps=1)
    cli = CliRunner().invoke(main, ["generate", "--checkpoint", str(out), "--autoencoder", str(tmp_path / "gone"),
                                    "--frames", "8", "--out", str(tmp_path / "v.npy")])  # fmt: skip
    assert cli.exit_code == 2 and "--autoencoder DIR" in cli.output and not (tmp_path / "v.npy").exists()
    video = tiny_autoencoder(tmp_path / "cog", "AutoencoderKLCogVideoX")
    with pytest.raises(VinError, match="is a AutoencoderKLCogVideoX .* trained with a AutoencoderKL"):
        vin.generate(vin.load_model(out, autoencoder=video), frames=8, steps=1)


def test_another_copy_of_the_autoencoder_and_checkpoints_without_a_record(latent_run, tmp_path):
    out, ae = latent_run
    reference = vin.generate(vin.load_model(out), frames=8, steps=2).video
    copy = shutil.copytree(ae, tmp_path / "copy")
    np.testing.assert_array_equal(vin.generate(vin.load_model(out, autoencoder=copy), frames=8, steps=2).video, reference)

    bare = tmp_path / "bare"  # config.json + weights only: 4-channel latents, no autoencoder known
    bare.mkdir()
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        shutil.copy(out / name, bare / name)
    with pytest.raises(VinError, match="makes 4-channel latents, not RGB frames, and no autoencoder is known"):
        vin.generate(vin.load_model(bare), frames=8, steps=1)
    np.testing.assert_array_equal(vin.generate(vin.load_model(bare, autoencoder=copy), frames=8, steps=2).video, reference)
    shutil.copy(out / "train.yaml", bare / "train.yaml")  # a run exported before autoencoder.json: its data.autoencoder
    np.testing.assert_array_equal(vin.generate(vin.load_model(bare), frames=8, steps=2).video, reference)


def test_a_video_autoencoders_latents_are_decoded_whole(tmp_path):
    root = tmp_path
    make_video_folder(root / "videos")
    ae = tiny_autoencoder(root / "vae", "AutoencoderKLCogVideoX")  # 2x spatial, 2x temporal
    out = root / "run"
    overrides = latent_overrides(root / "videos", ae, out, "data.height=16", "data.width=16", "model.sample_size=8",
                                 "train.steps=1", "train.sample_every=0", "train.chunk_counts=[1]")  # fmt: skip
    train(load_config(TINY, overrides), progress=False)
    model = vin.load_model(out)
    assert (model.latent_decoder.spatial, model.latent_decoder.temporal) == (2, 2)
    video = vin.generate(model, frames=8, steps=1).video
    # one causal pass over all 8 latent frames; diffusers decodes an even latent length to 2 frames each
    assert video.dtype == torch.uint8 and video.shape == (16, 16, 16, 3)


def test_vin_eval_decodes_a_latent_checkpoint(latent_run, tmp_path):
    out, _ = latent_run
    report = tmp_path / "eval.json"
    cli = CliRunner().invoke(main, ["eval", "--checkpoint", str(out), "--strategies", "data,vin", "--frames", "8",
                                    "--seeds", "0", "--steps", "2", "--features", "pixels", "--json", str(report),
                                    "--quiet"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    rows = json.loads(report.read_text())["rows"]
    assert {r["strategy"] for r in rows} == {"data", "vin"}
    cli = CliRunner().invoke(main, ["eval", str(tmp_path), "--autoencoder", str(tmp_path)])
    assert cli.exit_code == 2 and "use it with --checkpoint" in cli.output


def test_wans_video_autoencoder_normalises_each_channel_and_decodes_back(tmp_path):
    """AutoencoderKLWan: latents = (mean - latents_mean) / latents_std per channel; geometry from its config."""
    import diffusers

    torch.manual_seed(0)
    mean_c, std_c = [0.5, -0.2, 0.1, 0.0], [2.0, 0.5, 1.0, 4.0]
    vae = diffusers.AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=1, attn_scales=[],
                                     temperal_downsample=[False, True], latents_mean=mean_c, latents_std=std_c)  # fmt: skip
    vae.save_pretrained(tmp_path / "wan_vae")
    space = LatentSpace.of_folder(tmp_path / "wan_vae")
    assert (space.kind, space.latent_channels, space.spatial_factor, space.temporal_factor) == ("AutoencoderKLWan", 4, 4, 2)
    assert space.shift_factor == mean_c and space.scaling_factor == [1 / s for s in std_c]
    x = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    with torch.no_grad():
        raw = vae.encode(x).latent_dist.mean  # (1, 4, 5, 4, 4): 1 + 8 / 2 latent frames
        expected = vae.decode(raw).sample.clamp(-1, 1)
    ae = Autoencoder(tmp_path / "wan_vae")
    z = ae.encode(x)
    m, s = torch.tensor(mean_c).view(1, 4, 1, 1, 1), torch.tensor(std_c).view(1, 4, 1, 1, 1)
    torch.testing.assert_close(z, (raw - m) / s, atol=1e-5, rtol=1e-5)
    assert ae.pixel_frames(5) == 9
    space.write(tmp_path)  # the record round-trips through JSON with its per-channel lists
    torch.testing.assert_close(LatentDecoder(LatentSpace.read(tmp_path))(z), expected, atol=1e-4, rtol=1e-4)
