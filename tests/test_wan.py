"""The VIN on a Wan2.1 backbone, with a tiny random `WanTransformer3DModel` (built in well under a second)."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from vin.errors import VinError

diffusers = pytest.importorskip("diffusers")
from vin.backbones.wan import WanVIN  # noqa: E402
from vin.config import ModelConfig  # noqa: E402

from .conftest import read, windows as run_windows  # noqa: E402

TINY_WAN = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4,
                text_dim=16, freq_dim=32, ffn_dim=32, num_layers=2, rope_max_seq_len=64)  # fmt: skip


def tiny(context_frames: int = 0, seed: int = 0, random_adapter: bool = False, folder=None, lora_rank: int = 0) -> WanVIN:
    """A tiny random Wan with a VIN; `folder`: the backbone is saved there first and the model records it."""
    torch.manual_seed(seed)
    wan = diffusers.WanTransformer3DModel(**TINY_WAN)
    if folder is not None:
        wan.save_pretrained(folder)
    config = ModelConfig(vin_tokens=4, width=16, heads=2, vin_process_blocks=1, chunk_frames=3, context_frames=context_frames,
                         keyframe_stride=1, sample_size=8, backbone=str(folder or ""))  # fmt: skip
    model = WanVIN(wan, config, lora_rank).eval()
    if random_adapter:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def inputs(frames: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, frames, 8, 8, generator=g), torch.tensor([300.0, 800.0]), torch.randn(2, 5, 16, generator=g)


def test_an_untrained_adapter_with_no_context_is_wan_on_each_chunk():
    model = tiny()
    x, t, p = inputs()
    with torch.no_grad():
        windows = model(x, t, p)  # (B, N, C, F, H, W), the VIN read included
        wan = torch.stack([model.backbone(x[:, :, i * 3 : (i + 1) * 3], t, p, return_dict=False)[0] for i in range(2)], 1)
    assert windows.shape == (2, 2, 4, 3, 8, 8)
    torch.testing.assert_close(windows, wan, rtol=0, atol=1e-5)


def test_windows_have_local_positions_and_batch_like_one_at_a_time():
    """Wan's RoPE comes from each window's shape: chunk i's window is Wan on [context | own frames] alone."""
    model = tiny(context_frames=1, random_adapter=True)
    x, t, p = inputs(9)
    with torch.no_grad():
        z = read(model, x, t)
        windows = run_windows(model, x, t, p, z)
        for i in range(3):
            context = x[:, :, 3 * i - 1 : 3 * i] if i else model.context_placeholder.expand(2, -1, -1, 8, 8)
            with model.reading(z):
                alone = model.backbone(torch.cat([context, x[:, :, 3 * i : 3 * i + 3]], 2), t, p, return_dict=False)[0]
            torch.testing.assert_close(windows[:, i], alone, rtol=0, atol=1e-5)


def test_z_carries_the_whole_video_and_nothing_else_leaves_the_window():
    model = tiny(context_frames=1, random_adapter=True)
    x, t, p = inputs(9)
    y = x.clone()
    y[:, :, 8] += 1.0  # a frame of the last chunk
    with torch.no_grad():
        with_z = model(x, t, p)[:, 0] - model(y, t, p)[:, 0]
        z = read(model, x, t)
        fixed_z = run_windows(model, x, t, p, z)[:, 0] - run_windows(model, y, t, p, z)[:, 0]
    assert with_z.abs().max() > 1e-3  # chunk 0 sees the last chunk, through Z only
    assert fixed_z.abs().max() == 0


def test_only_the_adapter_learns_and_steps_lower_the_loss():
    model = tiny(context_frames=1).train()
    x0, t, p = inputs(6)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    sigma = (t / 1000).view(-1, 1, 1, 1, 1)
    x_t = (1 - sigma) * x0 + sigma * noise
    target = (noise - x0).unfold(2, 3, 3).permute(0, 2, 1, 5, 3, 4)  # own frames of each chunk: (B, N, C, F, H, W)
    trainable = [q for q in model.parameters() if q.requires_grad]
    assert {n.split(".")[0] for n, q in model.named_parameters() if q.requires_grad} == {
        "t_embedder", "interface", "z_kv", "context_placeholder"}  # fmt: skip
    optimizer = torch.optim.Adam(trainable, lr=3e-3)
    losses = []
    for _ in range(8):
        loss = ((model(x_t, t, p)[:, :, :, 1:] - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        assert all(q.grad is None for q in model.backbone.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1e-3, losses


def test_the_adapter_saves_alone_and_reloads_to_identical_predictions(tmp_path):
    model = tiny(context_frames=1, random_adapter=True)
    weights = model.trained_state_dict()
    assert weights and not any(k.startswith("backbone.") for k in weights)
    save_file({k: v.contiguous() for k, v in weights.items()}, tmp_path / "adapter.safetensors")
    again = tiny(context_frames=1, seed=0)  # the same backbone, a fresh adapter
    again.load_trained_state_dict(load_file(tmp_path / "adapter.safetensors"))
    x, t, p = inputs(6)
    with torch.no_grad():
        assert torch.equal(model(x, t, p), again(x, t, p))
    with pytest.raises(VinError, match="do not match this adapter and backbone .no tensor 'z_kv.1.to_k.weight'"):
        again.load_trained_state_dict({k: v for k, v in weights.items() if not k.startswith("z_kv.1.")})


def test_a_time_per_chunk_is_a_time_per_token_and_equal_times_change_nothing():
    model = tiny(context_frames=1, random_adapter=True)
    x, t, p = inputs(9)
    per_chunk = t[:, None].expand(-1, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(x, per_chunk, p), model(x, t, p), rtol=0, atol=1e-5)
        times = torch.tensor([[900.0, 500.0, 100.0], [300.0, 300.0, 700.0]])
        z = read(model, x, times)
        windows = run_windows(model, x, times, p, z)
        # chunk 1's window alone: its context frame at chunk 0's time, its own frames at its own
        tokens = 16  # (8 / 2) ** 2 per latent frame
        frame_t = torch.cat([times[:, :1].repeat(1, tokens), times[:, 1:2].repeat(1, 3 * tokens)], dim=1)
        with model.reading(z):
            alone = model.backbone(x[:, :, 2:6], frame_t, p, return_dict=False)[0]
    torch.testing.assert_close(windows[:, 1], alone, rtol=0, atol=1e-5)
    assert (read(model, x, times) - read(model, x, times.mean(1))).abs().max() > 1e-4  # offsets read


def sample(model, strategy, frames=9, guidance=1.0, null=None, **options):
    from vin.generation.options import make_options
    from vin.generation.strategies import run_strategy

    _, _, p = inputs(frames)
    o = make_options(frames, 3, 0, progress=False, guidance=guidance, **options)
    return run_strategy(model, strategy, o, labels=p[:1], null_labels=null, size=(8, 8)).sample


@pytest.mark.parametrize("strategy", ["vin", "independent", "autoregressive", "overlap", "freenoise", "fifo", "full"])
def test_the_strategies_run_on_wan(strategy):
    model = tiny(context_frames=1, random_adapter=True)
    options = {"position_interpolation": False} if strategy == "full" else {}
    video = sample(model, strategy, **options)
    assert video.shape == (1, 4, 9, 8, 8) and torch.isfinite(video).all()
    assert torch.equal(video, sample(model, strategy, **options))  # the seed decides


def test_full_on_wan_keeps_wans_positions_and_spectral_needs_the_own_dit():
    model = tiny(context_frames=1, random_adapter=True)
    with pytest.raises(VinError, match="position interpolation does not apply; sample with --no-position-interpolation"):
        sample(model, "full")
    with pytest.raises(VinError, match="spectral blends attention inside each block of the project's own DiT"):
        sample(model, "spectral")


def test_vin_on_an_untrained_adapter_without_context_is_wan_chunk_by_chunk():
    model = tiny(context_frames=0)
    chunked = sample(model, "vin", fusion_schedule="none", noise="independent")
    torch.testing.assert_close(chunked, sample(model, "independent"), rtol=0, atol=1e-5)


def test_guidance_contrasts_the_prompt_with_the_negative_prompt():
    model = tiny(context_frames=1, random_adapter=True)
    _, _, p = inputs(9)
    same = sample(model, "vin", guidance=5.0, null=p[:1])  # negative == prompt: cond - uncond = 0
    torch.testing.assert_close(same, sample(model, "vin"), rtol=0, atol=1e-4)
    assert (sample(model, "vin", guidance=5.0, null=torch.zeros_like(p[:1])) - same).abs().max() > 1e-3
    with pytest.raises(VinError, match="negative prompt"):
        sample(model, "vin", guidance=5.0)


def test_a_checkpoint_holds_the_adapter_and_finds_its_backbone(tmp_path):
    from vin.checkpoint import load_model

    model = tiny(context_frames=1, random_adapter=True, folder=tmp_path / "wan")
    model.save(tmp_path / "run")
    adapter = (tmp_path / "run" / "diffusion_pytorch_model.safetensors").stat().st_size
    assert adapter < (tmp_path / "wan" / "diffusion_pytorch_model.safetensors").stat().st_size
    again = load_model(tmp_path / "run")
    x, t, p = inputs(6)
    with torch.no_grad():
        torch.testing.assert_close(again(x, t, p), model(x, t, p), rtol=0, atol=1e-6)
    (tmp_path / "wan" / "diffusion_pytorch_model.safetensors").rename(tmp_path / "moved.safetensors")
    with pytest.raises(VinError, match=r"wan backbone '.*wan' could not be loaded"):
        load_model(tmp_path / "run")
    import shutil

    shutil.rmtree(tmp_path / "wan")
    with pytest.raises(VinError, match=r"wan backbone '.*wan' does not exist"):
        load_model(tmp_path / "run")


def test_generate_takes_prompt_embeddings_and_decodes_with_wans_autoencoder(tmp_path):
    """vin.generate on a saved Wan checkpoint: prompt and negative embeddings, decoded to RGB by AutoencoderKLWan."""
    from vin.checkpoint import load_model
    from vin.data.latent import LatentSpace
    from vin.generation.api import generate

    model = tiny(context_frames=1, random_adapter=True, folder=tmp_path / "wan")
    torch.manual_seed(0)
    diffusers.AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=1, attn_scales=[],
                               temperal_downsample=[False, True], latents_mean=[0.0] * 4,
                               latents_std=[1.0] * 4).save_pretrained(tmp_path / "vae")  # fmt: skip
    model.save(tmp_path / "run")
    LatentSpace.of_folder(tmp_path / "vae").write(tmp_path / "run")  # what decodes the samples: autoencoder.json
    loaded = load_model(tmp_path / "run")
    _, _, p = inputs(9)
    out = generate(loaded, 9, 2, 0, prompt_embeds=p[:1], negative_prompt_embeds=torch.zeros_like(p[:1]), guidance=4.0)
    # 9 latent frames -> 1 + 8 * 2 = 17 video frames; latents 8 x 8 -> 32 x 32 pixels (4x spatial)
    assert out.video.dtype == torch.uint8 and out.video.shape == (17, 32, 32, 3)
    again = generate(loaded, 9, 2, 0, prompt_embeds=p[:1], negative_prompt_embeds=torch.zeros_like(p[:1]), guidance=4.0)
    assert torch.equal(out.video, again.video)
    with pytest.raises(VinError, match="a VIN on a Wan backbone samples from a prompt"):
        generate(loaded, 9, 2, 0, guidance=4.0)


def test_lora_starts_as_the_pretrained_dit_and_only_adapters_learn():
    pytest.importorskip("peft")
    plain, lora = tiny(context_frames=1, random_adapter=True), tiny(context_frames=1, lora_rank=2)
    lora.load_state_dict(plain.state_dict(), strict=False)  # the same adapter; LoRA's B matrices at zero
    x, t, p = inputs(6)
    with torch.no_grad():
        torch.testing.assert_close(lora(x, t, p), plain(x, t, p), rtol=0, atol=1e-6)
    trained = {n for n, q in lora.named_parameters() if q.requires_grad}
    assert {n.split(".")[0] for n in trained} == {"t_embedder", "interface", "z_kv", "context_placeholder", "backbone"}
    assert all(".lora_" in n for n in trained if n.startswith("backbone.")) and len([n for n in trained if ".lora_" in n]) == 32
    lora.train()
    ((lora(x, t, p) - 1) ** 2).mean().backward()
    assert all(q.grad is None for n, q in lora.named_parameters() if n.startswith("backbone.") and ".lora_" not in n)
    assert all(q.grad is not None for n, q in lora.named_parameters() if ".lora_A." in n)
    assert set(lora.trained_state_dict()) == {n for n, _ in lora.named_parameters() if n in trained} | {
        k for k in lora.state_dict() if not k.startswith("backbone.")}  # fmt: skip


def test_activation_checkpointing_on_wan_gives_the_same_gradients():
    x, t, p = inputs(6)
    grads = []
    for checkpointed in (False, True):
        model = tiny(context_frames=1, random_adapter=True).train()
        if checkpointed:
            model.checkpoint_activations()
        ((model(x, t, p) - 1) ** 2).mean().backward()
        grads.append({n: q.grad.clone() for n, q in model.named_parameters() if q.requires_grad})
    assert grads[0].keys() == grads[1].keys() and grads[0]["z_kv.1.to_v.weight"].abs().max() > 0
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6)
