"""A VIN on a downloaded Wan2.1 pipeline folder (a tiny random one in the standard layout): text prompts through
the folder's UMT5 and tokenizer, the folder's UniPC scheduler and VAE; with an untrained adapter and one chunk
spanning the video, vin's video is WanPipeline's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vin.errors import VinError

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from .wan_pipeline import SPATIAL, TEMPORAL, save_tiny_wan_pipeline  # noqa: E402

LATENT_FRAMES, HEIGHT = 3, 32  # 3 latent frames = 9 video frames; 32 pixels = 4 latent positions


@pytest.fixture(scope="module")
def pipe_dir(tmp_path_factory):
    return save_tiny_wan_pipeline(tmp_path_factory.mktemp("wan") / "Wan2.1-T2V-tiny-Diffusers")


def vin_on(pipe_dir, chunk_frames: int = LATENT_FRAMES):
    """An untrained VIN on the pipeline folder, decoding with the folder's VAE."""
    from vin.config import ModelConfig
    from vin.data.latent import LatentDecoder, LatentSpace
    from vin.model import registry

    torch.manual_seed(0)
    config = ModelConfig(backbone=str(pipe_dir), vin_tokens=4, width=16, heads=2, vin_process_blocks=1,
                         chunk_frames=chunk_frames, context_frames=0, keyframe_stride=1, sample_size=HEIGHT // SPATIAL)  # fmt: skip
    model = registry.build(config).eval()
    model.latent_decoder = LatentDecoder(LatentSpace.of_folder(pipe_dir / "vae"))
    return model


@pytest.mark.parametrize("width", [HEIGHT, 2 * HEIGHT])  # square, and non-square as Wan's 832x480
def test_an_untrained_vin_on_a_pipeline_folder_makes_wan_pipelines_video(pipe_dir, width):
    """One chunk spanning the video, the same prompt, negative prompt, noise, steps and scheduler (UniPC)."""
    from vin.diffusion.sampling import initial_noise
    from vin.generation.api import generate

    model = vin_on(pipe_dir)
    assert model.default_scheduler == "pipeline"
    kw = dict(prompt="a red ball bounces on the green floor", negative_prompt="blue cat", guidance=3.0)
    ours = generate(model, LATENT_FRAMES, 4, 7, chunk_frames=LATENT_FRAMES, width=width, **kw).video.numpy()  # (T, H, W, 3)
    noise = initial_noise(model, 1, LATENT_FRAMES, (HEIGHT // SPATIAL, width // SPATIAL), torch.Generator().manual_seed(7))
    pipe = diffusers.WanPipeline.from_pretrained(pipe_dir)
    theirs = pipe(prompt=kw["prompt"], negative_prompt=kw["negative_prompt"], guidance_scale=3.0, height=HEIGHT, width=width,
                  num_frames=(LATENT_FRAMES - 1) * TEMPORAL + 1, num_inference_steps=4, latents=noise,
                  output_type="np").frames[0]  # fmt: skip
    theirs = np.round(theirs * 255).astype(np.uint8)
    assert ours.shape == theirs.shape == ((LATENT_FRAMES - 1) * TEMPORAL + 1, HEIGHT, width, 3)
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    assert diff.max() <= 1, diff.max()
    assert ours.std() > 5  # a real video, not a constant


def test_prompts_are_encoded_as_wan_pipeline_encodes_them(pipe_dir):
    model = vin_on(pipe_dir)
    pipe = diffusers.WanPipeline.from_pretrained(pipe_dir)
    text = "  a red   ball &amp; a blue cat "  # cleaned (html, spaces) as WanPipeline cleans it
    ours = model.encode_prompt([text, ""])
    theirs, _ = pipe.encode_prompt([text, ""], do_classifier_free_guidance=False, max_sequence_length=512)
    assert ours.shape == (2, 512, 16)
    torch.testing.assert_close(ours, theirs.float(), rtol=1e-5, atol=1e-6)  # float rounding of the same encoder
    assert ours[0, 8:].abs().max() == 0 and ours[0, :3].abs().max() > 0  # real tokens, then zeros to 512


def test_the_euler_scheduler_is_selectable_and_unknown_ones_are_refused(pipe_dir):
    from vin.generation.api import generate

    model = vin_on(pipe_dir)
    kw = dict(prompt="a red ball", chunk_frames=LATENT_FRAMES)
    unipc = generate(model, LATENT_FRAMES, 3, 0, **kw).video
    euler = generate(model, LATENT_FRAMES, 3, 0, scheduler="euler", **kw).video
    assert (unipc.float() - euler.float()).abs().max() > 0
    with pytest.raises(VinError, match="scheduler 'ddim': this model samples with pipeline or euler"):
        generate(model, LATENT_FRAMES, 3, 0, scheduler="ddim", **kw)
    with pytest.raises(VinError, match="scheduler must be one of"):
        generate(model, LATENT_FRAMES, 3, 0, scheduler="dpm", **kw)


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt="a red ball", prompt_embeds=torch.zeros(1, 3, 16)), "as text .* or as embeddings .*, not both"),
    (dict(negative_prompt="blue cat"), r"a negative prompt \(--negative-prompt\) needs a prompt"),
    (dict(prompt="a red ball", negative_prompt="blue cat"), r"acts only through guidance, which is off \(guidance 1\)"),
])  # fmt: skip
def test_text_prompts_say_what_is_wrong(pipe_dir, kwargs, message):
    from vin.generation.api import generate

    with pytest.raises(VinError, match=message):
        generate(vin_on(pipe_dir), LATENT_FRAMES, 2, 0, chunk_frames=LATENT_FRAMES, **kwargs)


def test_a_transformer_folder_alone_has_no_text_encoder(pipe_dir):
    from vin.config import ModelConfig
    from vin.model import registry

    config = ModelConfig(backbone=str(pipe_dir / "transformer"), vin_tokens=4, width=16, heads=2, vin_process_blocks=1,
                         chunk_frames=LATENT_FRAMES, context_frames=0, keyframe_stride=1, sample_size=4)  # fmt: skip
    model = registry.build(config)
    assert model.schedulers == ("euler",)
    with pytest.raises(VinError, match="a transformer folder alone: it has no text encoder"):
        model.encode_prompt(["a red ball"])


@pytest.fixture(scope="module")
def pipeline_run(pipe_dir, videos, tmp_path_factory):
    """vin train on the pipeline folder: its transformer, and its vae/ as data.autoencoder (not given); clips twice as
    wide as high (Wan's 832x480 in small), which the run then samples by default."""
    from safetensors.torch import save_file

    from vin.config import load_config
    from vin.train import train

    root = tmp_path_factory.mktemp("pipeline_run")
    g = torch.Generator().manual_seed(0)
    table = {"real/carphone.mp4": torch.randn(5, 16, generator=g), "": torch.randn(2, 16, generator=g)}
    save_file(table, root / "captions.safetensors")
    overrides = [f"model.backbone={pipe_dir}", "data.source=folder", f"data.root={videos}", f"data.captions={root / 'captions.safetensors'}",
                 f"data.height={HEIGHT}", f"data.width={2 * HEIGHT}", f"model.sample_size=[{HEIGHT // SPATIAL},{2 * HEIGHT // SPATIAL}]",
                 "model.chunk_frames=2", "model.context_frames=1", "model.keyframe_stride=1", "model.vin_tokens=4", "model.width=16",
                 "model.heads=2", "model.vin_process_blocks=1", "model.flow_shift=3", "train.windows_per_step=2", "train.chunk_counts=[1,2]",
                 "train.steps=2", "train.warmup_steps=0", f"train.out_dir={root / 'run'}"]  # fmt: skip
    return train(load_config(None, overrides), progress=False)


def test_a_run_on_a_pipeline_folder_records_it_and_a_moved_one_loads_with_backbone(pipeline_run, pipe_dir, tmp_path):
    import json
    import shutil

    from vin.checkpoint import load_model
    from vin.generation.api import generate

    recorded = json.loads((pipeline_run / "config.json").read_text())["backbone"]
    assert recorded == str(pipe_dir.resolve())
    assert json.loads((pipeline_run / "autoencoder.json").read_text())["autoencoder"] == str((pipe_dir / "vae").resolve())
    kw = dict(prompt="a red ball", negative_prompt="blue cat", guidance=2.0)
    before = generate(load_model(pipeline_run), 4, 2, 1, **kw).video
    moved = tmp_path / "elsewhere"
    shutil.copytree(pipe_dir, moved)
    shutil.move(str(pipe_dir), str(tmp_path / "gone"))
    try:
        with pytest.raises(VinError, match=r"wan backbone '.*' does not exist"):
            load_model(pipeline_run)
        again = generate(load_model(pipeline_run, backbone=moved), 4, 2, 1, **kw).video
    finally:
        shutil.move(str(tmp_path / "gone"), str(pipe_dir))
    assert torch.equal(before, again)


def test_vin_generate_takes_a_text_prompt_and_a_scheduler(pipeline_run, tmp_path):
    from click.testing import CliRunner

    from vin.cli import main
    from vin.videos import read_video

    args = ["generate", "--checkpoint", str(pipeline_run), "--frames", "13", "--steps", "2", "--quiet", "--prompt", "a red ball"]
    unipc = CliRunner().invoke(main, [*args, "--guidance", "2", "--negative-prompt", "blue cat", "--out", str(tmp_path / "a.npy")])
    assert unipc.exit_code == 0, unipc.output
    euler = CliRunner().invoke(main, [*args, "--scheduler", "euler", "--out", str(tmp_path / "b.npy")])
    assert euler.exit_code == 0, euler.output
    a, b = read_video(tmp_path / "a.npy"), read_video(tmp_path / "b.npy")
    assert a.shape == b.shape == ((4 - 1) * TEMPORAL + 1, HEIGHT, 2 * HEIGHT, 3) and (a != b).any()  # the run's size
    square = CliRunner().invoke(main, [*args, "--width", str(HEIGHT), "--out", str(tmp_path / "c.npy")])
    assert square.exit_code == 0 and read_video(tmp_path / "c.npy").shape == (13, HEIGHT, HEIGHT, 3), square.output
    for extra, message in ((["--negative-prompt", "blue cat"], "acts only through guidance"),
                           (["--prompt-embeds", str(tmp_path / "p.safetensors")], "does not exist"),
                           (["--scheduler", "ddim"], "scheduler 'ddim': this model samples with pipeline or euler")):  # fmt: skip
        out = tmp_path / "bad.npy"
        result = CliRunner().invoke(main, [*args, *extra, "--out", str(out)])
        assert result.exit_code == 2 and message in result.output and not out.exists(), result.output


def test_a_backbone_saved_in_bf16_samples_in_fp32_and_in_bf16(pipeline_run, pipe_dir, tmp_path):
    import shutil

    from vin.checkpoint import load_model
    from vin.generation.api import generate

    half = tmp_path / "bf16"
    shutil.copytree(pipe_dir, half)
    diffusers.WanTransformer3DModel.from_pretrained(pipe_dir / "transformer").to(torch.bfloat16).save_pretrained(half / "transformer")
    kw = dict(prompt="a red ball", negative_prompt="blue cat", guidance=2.0)
    videos = {}
    for dtype in (None, torch.bfloat16):  # None: float32 on the CPU
        model = load_model(pipeline_run, backbone=half, dtype=dtype)
        wan = model.backbone
        assert wan.patch_embedding.weight.dtype == (dtype or torch.float32)
        assert wan.scale_shift_table.dtype == wan.condition_embedder.time_embedder.linear_1.weight.dtype == torch.float32
        assert model.dtype == torch.float32  # the adapter computes in float32 whatever the backbone's dtype
        videos[dtype] = generate(model, 4, 2, 1, **kw).video.numpy().astype(int)
    gap = np.abs(videos[None] - videos[torch.bfloat16])
    assert gap.mean() < 8 and videos[torch.bfloat16].std() > 5, (gap.mean(), gap.max())  # bf16 rounding, not noise


def test_wan_vin_pipeline_is_called_as_wan_pipeline_is(pipeline_run, pipe_dir):
    import vin
    from vin.checkpoint import load_model
    from vin.generation.api import generate

    pipe = vin.WanVINPipeline.from_pretrained(pipe_dir, vin=pipeline_run)
    out = pipe(prompt="a red ball", negative_prompt="blue cat", num_frames=13, height=HEIGHT, width=2 * HEIGHT,
               num_inference_steps=2, guidance_scale=2.0, generator=torch.Generator().manual_seed(1)).frames[0]  # fmt: skip
    direct = generate(load_model(pipeline_run), 4, 2, 1, prompt="a red ball", negative_prompt="blue cat", guidance=2.0).video
    assert out.dtype == np.float32 and out.shape == (13, HEIGHT, 2 * HEIGHT, 3)
    np.testing.assert_array_equal(np.round(out * 255).astype(np.uint8), direct.numpy())
    with pytest.raises(VinError, match=r"12 frames: the autoencoder makes videos of 4k \+ 1 frames \(k \+ 1 latent frames, in "
                       r"chunks of 2 latent frames \(8 frames\)\); use 5 or 13"):  # fmt: skip
        pipe(prompt="a red ball", num_frames=12)
    with pytest.raises(VinError, match=r"width=40 must be a multiple of 16 \(the patch, 2, times the autoencoder's 8x\); use 32 or 48"):
        pipe(prompt="a red ball", num_frames=13, height=32, width=40)
    given = np.random.default_rng(1).integers(0, 256, (5, HEIGHT, 2 * HEIGHT, 3), dtype=np.uint8)
    travel = pipe(prompt={0: "a red ball", 1: "a blue cat"}, num_frames=13, num_inference_steps=2, guidance_scale=1.0,
                  init_video=given, output_type="uint8").frames[0]  # fmt: skip
    np.testing.assert_array_equal(travel[:5], given)  # a continuation with a prompt per chunk, as vin.generate takes them


def test_a_meta_load_reads_no_backbone_weights(pipeline_run, pipe_dir, tmp_path):
    """What `vin generate --nproc N` checks in its parent process: shapes only, no gigabytes read."""
    import shutil

    from vin.checkpoint import load_model
    from vin.generation.api import check_request
    from vin.generation.options import GenerationOptions

    bare = tmp_path / "no-weights"
    shutil.copytree(pipe_dir, bare)
    (bare / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    model = load_model(pipeline_run, "meta", backbone=bare)
    assert model.backbone.patch_embedding.weight.is_meta
    assert check_request(model, "vin", GenerationOptions(frames=4), world=2, labelled=True).chunks == 2
    with pytest.raises(VinError, match="could not be loaded"):
        load_model(pipeline_run, backbone=bare)  # a real load reads them


def text_caption_run(pipe_dir, videos, root, captions: dict[str, str], *extra: str):
    """A 1-step run on the pipeline folder with captions given as JSON lines."""
    import json

    from vin.config import load_config
    from vin.train import train

    (root / "captions.jsonl").write_text("".join(json.dumps({"path": p, "caption": c}) + "\n" for p, c in captions.items()))
    overrides = [f"model.backbone={pipe_dir}", "data.source=folder", f"data.root={videos}", f"data.captions={root / 'captions.jsonl'}",
                 f"data.height={HEIGHT}", f"data.width={HEIGHT}", f"model.sample_size={HEIGHT // SPATIAL}", "model.chunk_frames=2",
                 "model.context_frames=1", "model.vin_tokens=4", "model.width=16", "model.heads=2", "model.vin_process_blocks=1",
                 "train.windows_per_step=2", "train.chunk_counts=[1,2]", "train.steps=1", "train.warmup_steps=0",
                 f"data.cache_dir={root / 'cache'}", *extra]  # fmt: skip
    return train(load_config(None, overrides), progress=False)


def test_text_captions_are_encoded_once_into_a_disk_cache(pipe_dir, videos, tmp_path):
    from vin.data.captions import CaptionCache

    captions = {"real/carphone.mp4": "a red ball bounces", "real/carphone_distorted.mp4": "a blue cat walks"}
    text_caption_run(pipe_dir, videos, tmp_path, captions, f"train.out_dir={tmp_path / 'a'}")
    cached = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "captions").glob("*.npy")}
    assert len(cached) == 3  # two captions and the empty prompt
    model = vin_on(pipe_dir)
    cache = CaptionCache(tmp_path / "cache" / "captions", str((pipe_dir / "text_encoder").resolve()))
    for text in (*captions.values(), ""):  # what training reads is what sampling's encoder gives
        torch.testing.assert_close(cache.load(text, 512), model.encode_prompt([text])[0], rtol=1e-3, atol=1e-3)
    changed = {**captions, "real/carphone.mp4": "a green ball"}
    text_caption_run(pipe_dir, videos, tmp_path, changed, f"train.out_dir={tmp_path / 'b'}")
    again = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "captions").glob("*.npy")}
    assert {k: again[k] for k in cached} == cached and len(again) == 4  # reused; only the changed caption encoded


@pytest.mark.parametrize("line, message", [
    ('{"path": "/etc/passwd", "caption": "x"}', "is not a path under data.root"),
    ('{"path": "real/carphone.mp4"}', "give a path and a caption as text"),
    ("not json", "line 1: not JSON"),
])  # fmt: skip
def test_a_bad_caption_file_is_one_line_before_any_work(pipe_dir, videos, tmp_path, line, message):
    from vin.config import load_config
    from vin.train import train

    (tmp_path / "c.jsonl").write_text(line + "\n")
    overrides = [f"model.backbone={pipe_dir}", "data.source=folder", f"data.root={videos}", f"data.captions={tmp_path / 'c.jsonl'}",
                 f"data.height={HEIGHT}", f"data.width={HEIGHT}", f"model.sample_size={HEIGHT // SPATIAL}", "model.chunk_frames=2",
                 "model.context_frames=1", "model.vin_tokens=4", "model.width=16", "model.heads=2", "train.steps=1",
                 f"train.out_dir={tmp_path / 'run'}"]  # fmt: skip
    with pytest.raises(VinError, match=message):
        train(load_config(None, overrides), progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_run_knows_its_backbone(pipeline_run, pipe_dir, tmp_path):
    """Another backbone of the same shapes is warned about; an edited backbone-derived setting is refused."""
    import json
    import shutil

    from vin.checkpoint import load_model

    other = save_tiny_wan_pipeline(tmp_path / "other", seed=1)  # the same architecture, other weights
    with pytest.warns(UserWarning, match=r"trained on a backbone with fingerprint .*\(another backbone"):
        load_model(pipeline_run, backbone=other)
    edited = tmp_path / "edited"
    shutil.copytree(pipeline_run, edited, ignore=shutil.ignore_patterns("checkpoints"))
    config = json.loads((edited / "config.json").read_text())
    for name, value in (("depth", 3), ("text_dim", 8), ("in_channels", 16)):
        (edited / "config.json").write_text(json.dumps({**config, name: value}))
        with pytest.raises(VinError, match=f"its config.json says model.{name}={value}, but the backbone .* makes it"):
            load_model(edited)


@pytest.mark.parametrize("frames, message", [
    ("12", r"12 frames: the autoencoder makes videos of 4k \+ 1 frames \(k \+ 1 latent frames, in chunks of 2 latent frames "
           r"\(8 frames\)\); use 5 or 13"),
    ("9", r"9 frames make 3 latent frames, which chunks of 2 latent frames \(8 frames\) do not fill; use 5 or 13 frames"),
])  # fmt: skip
def test_vin_generate_counts_video_frames_and_names_the_nearest_that_work(pipeline_run, tmp_path, frames, message):
    """--frames is the video's length (4k + 1 on Wan), checked against the VAE and the chunks in those units."""
    from click.testing import CliRunner

    from vin.cli import main

    out = tmp_path / "x.npy"
    result = CliRunner().invoke(main, ["generate", "--checkpoint", str(pipeline_run), "--frames", frames, "--steps", "1",
                                       "--quiet", "--prompt", "a red ball", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 2 and result.output.count("\n") == 1 and not out.exists(), result.output
    assert __import__("re").search(message, result.output), result.output
    full = CliRunner().invoke(main, ["generate", "--checkpoint", str(pipeline_run), "--frames", "9", "--strategy", "full",
                                     "--no-position-interpolation", "--steps", "1", "--quiet", "--prompt", "a", "--out", str(out)])  # fmt: skip
    assert full.exit_code == 0 and np.load(out).shape[0] == 9, full.output  # full has no chunks to fill


def test_the_cli_shows_a_library_warning_as_one_line(pipeline_run, tmp_path):
    from click.testing import CliRunner

    from vin.cli import main

    other = save_tiny_wan_pipeline(tmp_path / "other", seed=2)
    result = CliRunner().invoke(main, ["generate", "--checkpoint", str(pipeline_run), "--backbone", str(other), "--frames", "5",
                                       "--steps", "1", "--quiet", "--prompt", "a red ball", "--out", str(tmp_path / "x.npy")])  # fmt: skip
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 1 and "fingerprint" in warned[0] and "UserWarning" not in result.output


def test_prompt_travel_on_wan_is_wan_on_each_chunk_with_its_own_prompt(pipe_dir):
    """An untrained adapter without context: each chunk of a prompt-per-chunk video is Wan on that chunk with its prompt."""
    from vin.diffusion.sampling import ChunkConditions
    from vin.generation.options import make_options
    from vin.generation.strategies import run_strategy

    model = vin_on(pipe_dir, chunk_frames=1)  # 3 latent frames: 3 chunks
    red, cat = model.encode_prompt(["a red ball"]), model.encode_prompt(["a blue cat"])
    o = make_options(LATENT_FRAMES, 2, 0, progress=False)
    size = (HEIGHT // SPATIAL, HEIGHT // SPATIAL)
    travel = run_strategy(model, "vin", o, labels=ChunkConditions.of([red, red, cat]), size=size).sample
    alone = {name: run_strategy(model, "vin", o, labels=e, size=size).sample for name, e in (("red", red), ("cat", cat))}
    torch.testing.assert_close(travel[:, :, :2], alone["red"][:, :, :2], rtol=0, atol=1e-5)
    torch.testing.assert_close(travel[:, :, 2:], alone["cat"][:, :, 2:], rtol=0, atol=1e-5)
    assert (alone["red"] - alone["cat"]).abs().max() > 1e-4  # the prompts do differ (10x the tolerance above)


def test_vin_generate_continues_a_video_on_wan_and_prompts_travel(pipeline_run, tmp_path):
    """The given frames come back unchanged (encoded with the folder's VAE for sampling, returned as given); a
    count the VAE cannot encode alone is one line; --prompt once per chunk and --prompt-file run."""
    from click.testing import CliRunner

    from vin.cli import main
    from vin.videos import read_video

    given = np.random.default_rng(0).integers(0, 256, (9, HEIGHT, 2 * HEIGHT, 3), dtype=np.uint8)
    np.save(tmp_path / "given.npy", given)
    args = ["generate", "--checkpoint", str(pipeline_run), "--frames", "13", "--steps", "2", "--quiet", "--prompt", "a red ball",
            "--init-video", str(tmp_path / "given.npy")]  # fmt: skip
    run = CliRunner().invoke(main, [*args, "--init-frames", "5", "--out", str(tmp_path / "a.npy")])
    assert run.exit_code == 0, run.output
    video = read_video(tmp_path / "a.npy")
    assert video.shape == (13, HEIGHT, 2 * HEIGHT, 3)
    np.testing.assert_array_equal(video[:5], given[:5])
    run = CliRunner().invoke(main, [*args, "--init-frames", "3", "--out", str(tmp_path / "b.npy")])
    assert run.exit_code != 0 and "groups of 4, so give 1 + a multiple of 4 frames, e.g. 1" in run.output
    schedule = tmp_path / "prompts.txt"
    schedule.write_text("0: a red ball\n1: a blue cat\n")
    travel = ["generate", "--checkpoint", str(pipeline_run), "--frames", "13", "--steps", "2", "--quiet"]
    for extra in (["--prompt-file", str(schedule)], ["--prompt", "a", "--prompt", "b"]):  # 4 latent frames: 2 chunks of 2
        run = CliRunner().invoke(main, [*travel, *extra, "--out", str(tmp_path / "c.npy")])
        assert run.exit_code == 0, run.output
    run = CliRunner().invoke(main, [*travel, "--prompt", "a", "--prompt", "b", "--prompt", "c", "--out", str(tmp_path / "d.npy")])
    assert run.exit_code != 0 and "3 conditions (labels or prompts) for 2 chunks of 2 frames: give one, or one per chunk" in run.output
