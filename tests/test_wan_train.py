"""`vin train` on a pretrained Wan backbone (a tiny random WanTransformer3DModel and AutoencoderKLWan saved as
diffusers saves them): config resolution, the adapter-only checkpoint, LoRA, exact resume, DDP, sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from vin.config import load_config
from vin.errors import VinError

diffusers = pytest.importorskip("diffusers")

TINY_WAN = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4,
                text_dim=16, freq_dim=32, ffn_dim=32, num_layers=2, rope_max_seq_len=64)  # fmt: skip


@pytest.fixture(scope="module")
def wan(tmp_path_factory, videos) -> dict[str, Path]:
    """Folders of a tiny Wan transformer and VAE (4x spatial, 4x temporal, as Wan's), and caption embeddings."""
    root = tmp_path_factory.mktemp("wan")
    torch.manual_seed(0)
    diffusers.WanTransformer3DModel(**TINY_WAN).save_pretrained(root / "transformer")
    diffusers.AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=1, attn_scales=[],
                               temperal_downsample=[True, True], latents_mean=[0.0] * 4,
                               latents_std=[1.0] * 4).save_pretrained(root / "vae")  # fmt: skip
    g = torch.Generator().manual_seed(0)
    names = ["real/carphone.mp4", "real/carphone_distorted.mp4"]
    table = {name: torch.randn(3 + i, 16, generator=g) for i, name in enumerate(names)}  # token embeddings (L, D)
    table[""] = torch.randn(2, 16, generator=g)  # the empty prompt: what dropped captions become
    save_file(table, root / "captions.safetensors")
    return {"transformer": root / "transformer", "vae": root / "vae", "captions": root / "captions.safetensors",
            "videos": videos}  # fmt: skip


def overrides(wan: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [f"model.backbone={wan['transformer']}", "data.source=folder", f"data.root={wan['videos']}",
            f"data.autoencoder={wan['vae']}", f"data.captions={wan['captions']}", "data.height=32", "data.width=32",
            "model.sample_size=8", "model.chunk_frames=3", "model.context_frames=1", "model.keyframe_stride=1",
            "model.vin_tokens=4", "model.width=16", "model.heads=2", "model.vin_process_blocks=1", "model.flow_shift=3",
            "train.windows_per_step=4", "train.chunk_counts=[1,2]", "train.steps=4", "train.save_every=2",
            "train.warmup_steps=0", "train.lr=3e-3", f"train.out_dir={out}", *extra]  # fmt: skip


def test_the_backbone_decides_the_geometry_and_contradictions_are_errors(wan):
    from vin.model.registry import resolve

    m = resolve(load_config(None, overrides(wan, Path("unused"))).model)
    assert (m.in_channels, m.patch_hw, m.patch_t, m.text_dim, m.depth) == (4, 2, 1, 16, 2)
    assert (m.objective, m.parameterization, m.coupling) == ("flow", "direct", "cross")
    with pytest.raises(VinError, match=r"model.in_channels=5 contradicts the wan backbone .* which makes it 4; remove model.in_channels"):
        resolve(load_config(None, overrides(wan, Path("unused"), "model.in_channels=5")).model)
    with pytest.raises(VinError, match=r"model.coupling='concat' contradicts the wan backbone .* which makes it 'cross'"):
        resolve(load_config(None, overrides(wan, Path("unused"), "model.coupling=concat")).model)
    with pytest.raises(VinError, match=r"wan backbone '.*nowhere' does not exist \(model.backbone must be a local diffusers Wan2.1 folder"):
        resolve(load_config(None, ["model.backbone=/nowhere"]).model)
    with pytest.raises(VinError, match="holds a 'AutoencoderKLWan', not a WanTransformer3DModel"):
        resolve(load_config(None, [f"model.backbone={wan['vae']}"]).model)


@pytest.mark.parametrize("extra, message", [
    (["data.autoencoder=''"], "a wan backbone denoises its VAE's latents: set data.source=folder, and model.backbone to the whole pipeline"),
    (["train.sample_every=2"], "samples of a wan run need prompt embeddings"),
    (["model.backbone=''", "model.in_channels=4", "model.patch_t=1", "model.text_dim=16", "train.lora_rank=4"], "train.lora_rank adapts a pretrained backbone"),
    (["model.backbone=''", "model.in_channels=4", "model.patch_t=1", "model.text_dim=16", "train.backbone_dtype=bf16"],
     "train.backbone_dtype=bf16 sets a pretrained backbone's dtype: it needs model.backbone"),
    (["train.backbone_dtype=fp8"], "train.backbone_dtype must be one of auto, bf16, fp16, fp32, got 'fp8'"),
])  # fmt: skip
def test_what_a_wan_run_needs_is_checked_before_any_work(wan, tmp_path, extra, message):
    from vin.train import train

    with pytest.raises(VinError, match=message):
        train(load_config(None, overrides(wan, tmp_path / "run", *extra)), progress=False)
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def wan_run(wan, tmp_path_factory) -> Path:
    """A 4-step Wan run with LoRA and caption dropout, exported."""
    from vin.train import train

    out = tmp_path_factory.mktemp("wan_run") / "run"
    return train(load_config(None, overrides(wan, out, "train.lora_rank=2", "train.label_dropout=0.5")), progress=False)


def test_a_wan_run_saves_the_adapter_and_its_lora_only_and_generates_from_it(wan, wan_run):
    from vin.checkpoint import load_model
    from vin.generation.api import generate

    out = wan_run
    weights = load_file(out / "diffusion_pytorch_model.safetensors")
    backbone = load_file(wan["transformer"] / "diffusion_pytorch_model.safetensors")
    assert not any(k.startswith("backbone.") and ".lora_" not in k for k in weights)
    assert sum(".lora_B." in k for k in weights) == 2 * 2 * 4  # 2 blocks x 2 attentions x (q, k, v, out)
    assert any(v.abs().max() > 0 for k, v in weights.items() if ".lora_B." in k)  # LoRA trained (it starts at zero)
    assert sum(v.numel() for v in weights.values()) < sum(v.numel() for v in backbone.values())
    meta = json.loads((out / "config.json").read_text())
    assert meta["_class_name"] == "WanVIN" and meta["lora_rank"] == 2 and meta["backbone"] == str(wan["transformer"].resolve())
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    probes = [r for r in log if "loss_gap" in r]
    assert [r["step"] for r in probes] == [2, 4] and all(abs(r["loss_gap"]) < 10 for r in probes)
    model = load_model(out)
    assert model.lora_rank == 2 and model.latent_decoder is not None and model.config.flow_shift == 3.0
    prompt = load_file(wan["captions"])["real/carphone.mp4"][None]  # (1, L, D)
    negative = load_file(wan["captions"])[""][None]  # a different length: zero-padded to the longer, as Wan pads
    a = generate(model, 6, 3, 0, prompt_embeds=prompt, negative_prompt_embeds=negative, guidance=3.0)
    b = generate(load_model(out), 6, 3, 0, prompt_embeds=prompt, negative_prompt_embeds=negative, guidance=3.0)
    assert a.video.shape == (21, 32, 32, 3) and torch.equal(a.video, b.video)  # 6 latent frames: 1 + 5 x 4 video frames
    with pytest.raises(VinError, match="a VIN on a Wan backbone samples from a prompt: give its token embeddings"):
        generate(model, 6, 3, 0)
    with pytest.raises(VinError, match=r"the prompt embeddings are \(1, 3, 8\); this model reads \(1, L, 16\)"):
        generate(model, 6, 3, 0, prompt_embeds=prompt[..., :8])


def _embeds(wan: dict[str, Path], folder: Path) -> tuple[Path, Path]:
    table = load_file(wan["captions"])
    save_file({"prompt_embeds": table["real/carphone.mp4"]}, folder / "prompt.safetensors")
    save_file({"negative": table[""][None]}, folder / "negative.safetensors")
    return folder / "prompt.safetensors", folder / "negative.safetensors"


def test_vin_generate_reads_prompt_embeddings_and_two_ranks_make_what_one_makes(wan, wan_run, tmp_path):
    import os
    import subprocess
    import sys

    import numpy as np

    prompt, negative = _embeds(wan, tmp_path)
    base = [sys.executable, "-m", "vin", "generate", "--checkpoint", str(wan_run), "--frames", "21", "--steps", "2",
            "--prompt-embeds", str(prompt), "--negative-embeds", str(negative), "--guidance", "3", "--quiet"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(base + ["--out", str(tmp_path / "one.npy")], capture_output=True, text=True, env=env, timeout=300)
    two = subprocess.run(base + ["--out", str(tmp_path / "two.npy"), "--nproc", "2", "--json"], capture_output=True,
                         text=True, env=env, timeout=300)  # fmt: skip
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    a, b = np.load(tmp_path / "one.npy").astype(int), np.load(tmp_path / "two.npy").astype(int)
    assert a.shape == (21, 32, 32, 3) and np.abs(a - b).max() <= 1  # uint8 rounding of float differences ~1e-6
    assert json.loads(two.stdout.strip().splitlines()[-1])["ranks"] == 2


@pytest.mark.parametrize("args, message", [
    ([], "a VIN on a Wan backbone samples from a prompt"),
    (["--prompt-embeds", "missing.safetensors"], "--prompt-embeds 'missing.safetensors' does not exist"),
    (["--prompt-embeds", "{two}"], r"holds 2 tensors \(a, b\); it must hold exactly one"),
    (["--negative-embeds", "{negative}", "--guidance", "3"], r"a negative prompt \(--negative-embeds\) needs a prompt"),
])  # fmt: skip
def test_vin_generate_on_wan_says_what_is_wrong_with_the_embeddings(wan, wan_run, tmp_path, args, message):
    from click.testing import CliRunner

    from vin.cli import main

    prompt, negative = _embeds(wan, tmp_path)
    save_file({"a": torch.zeros(2, 16), "b": torch.zeros(2, 16)}, tmp_path / "two.safetensors")
    args = [a.format(two=tmp_path / "two.safetensors", negative=negative) for a in args]
    result = CliRunner().invoke(main, ["generate", "--checkpoint", str(wan_run), "--frames", "21", "--steps", "1",
                                       "--out", str(tmp_path / "x.mp4"), *args])  # fmt: skip
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert __import__("re").search(message, result.output), result.output
    assert not (tmp_path / "x.mp4").exists()


def _ddp_worker(rank: int, world: int, port: int, wan: dict, out: str) -> None:
    from vin.train import train

    from .test_parallel import join_group

    join_group(rank, world, port)
    train(load_config(None, overrides(wan, Path(out), "train.lora_rank=2", "train.steps=2")), progress=False)


def test_two_rank_ddp_on_wan_trains_what_one_process_trains(wan, tmp_path):
    from vin.train import train

    from .test_parallel import assert_ddp_run_equals_one_process, spawn

    spawn(_ddp_worker, wan, str(tmp_path / "ddp"))
    train(load_config(None, overrides(wan, tmp_path / "one", "train.lora_rank=2", "train.steps=2")), progress=False)
    assert_ddp_run_equals_one_process(tmp_path / "ddp", tmp_path / "one")


def test_a_bf16_backbone_trains_an_fp32_adapter_and_a_stopped_run_resumes_bit_for_bit(wan, tmp_path):
    """train.backbone_dtype=bf16 (the default on CUDA): the frozen Wan in bf16 (what diffusers keeps in fp32
    stays so), what trains (the VIN, the Z projections, LoRA) in fp32; it trains as fp32 does up to bf16 rounding."""
    from vin.train import build_model, train

    half = ("train.lora_rank=2", "train.backbone_dtype=bf16", "train.log_every=1")
    model = build_model(load_config(None, overrides(wan, tmp_path / "unused", *half)))
    trained = {name: p.dtype for name, p in model.named_parameters() if p.requires_grad}
    assert set(trained.values()) == {torch.float32} and sum(".lora_" in name for name in trained) == 2 * 2 * 4 * 2
    wan_model = model.backbone
    assert wan_model.patch_embedding.weight.dtype == wan_model.blocks[0].ffn.net[0].proj.weight.dtype == torch.bfloat16
    assert wan_model.scale_shift_table.dtype == wan_model.blocks[0].norm2.weight.dtype == torch.float32
    train(load_config(None, overrides(wan, tmp_path / "straight", *half)), progress=False)
    train(load_config(None, overrides(wan, tmp_path / "resumed", *half, "train.stop_at=2")), progress=False)
    train(load_config(None, overrides(wan, tmp_path / "resumed", *half, "train.resume=auto")), progress=False)
    a = load_file(tmp_path / "straight" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "resumed" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert {v.dtype for v in a.values()} == {torch.float32}
    state = load_file(tmp_path / "resumed" / "checkpoints" / "step_0000004" / "model.safetensors")
    assert state.keys() == a.keys()  # the resumable state holds the adapter, not the backbone
    train(load_config(None, overrides(wan, tmp_path / "fp32", "train.lora_rank=2", "train.log_every=1")), progress=False)
    rows = [[json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()] for run in ("straight", "fp32")]
    losses = [[r["loss"] for r in run if "loss" in r] for run in rows]
    gaps = [abs(x - y) / y for x, y in zip(*losses)]
    assert len(gaps) == 4 and 0 < max(gaps) < 0.05, losses  # bf16 rounding of the frozen weights, not another training


def test_captions_must_be_token_embeddings_and_dropped_ones_need_the_empty_prompt(wan, tmp_path):
    from vin.train import train

    pooled = tmp_path / "pooled.safetensors"
    save_file({"real/carphone.mp4": torch.randn(16)}, pooled)
    with pytest.raises(VinError, match=r"is \(16,\); a wan backbone reads each caption's token embeddings \(L, text_dim\)"):
        train(load_config(None, overrides(wan, tmp_path / "a", f"data.captions={pooled}")), progress=False)
    no_null = tmp_path / "no_null.safetensors"
    captioned = {k: v for k, v in load_file(wan["captions"]).items() if k}
    save_file(captioned, no_null)
    with pytest.raises(VinError, match=r"1 videos have no caption \(e.g. truncated_late.mp4\) and there is no entry ''"):
        train(load_config(None, overrides(wan, tmp_path / "b", f"data.captions={no_null}")), progress=False)
    save_file({**captioned, "truncated_late.mp4": torch.randn(4, 16)}, no_null)
    with pytest.raises(VinError, match="drops captions to the empty prompt: add its embedding to data.captions under the key ''"):
        train(load_config(None, overrides(wan, tmp_path / "c", f"data.captions={no_null}", "train.label_dropout=1.0")), progress=False)


def test_a_wan_run_starts_from_another_with_init_from(wan, wan_run, tmp_path):
    from vin.train import train

    out = tmp_path / "again"
    extra = ("train.lora_rank=2", f"train.init_from={wan_run}", "train.lr=0", "train.steps=1")
    train(load_config(None, overrides(wan, out, *extra)), progress=False)
    a, b = load_file(wan_run / "diffusion_pytorch_model.safetensors"), load_file(out / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # lr 0: the weights it started from
    with pytest.raises(VinError, match=r"is a different model than this run's config: model.vin_tokens: 8 here, 4 there"):
        train(load_config(None, overrides(wan, tmp_path / "other", *extra, "model.vin_tokens=8")), progress=False)
