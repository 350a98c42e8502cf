"""Continuing a given video (`init_video`): the given frames come back as given, sampling keeps them at every
step's noise level, and a request that cannot fit is one line before any work."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import vin
from vin.cli import main
from vin.diffusion.objective import Objective, make_scheduler
from vin.diffusion.sampling import Known, Sampler
from vin.errors import VinError
from vin.generation import STRATEGIES, GenerationOptions, run_strategy
from vin.videos import to_uint8

from .conftest import tiny_model

F = 4  # the tiny model's chunk frames


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def given_video(frames: int = 12, size: int = 16, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)


CASES = [(s, 6) for s in STRATEGIES] + [(s, c) for s in ("vin", "autoregressive", "fifo", "independent") for c in (1, 4)]


@pytest.mark.parametrize("strategy, count", CASES)  # 1: image-to-video, 4: one whole chunk, 6: a chunk and a half
def test_every_strategy_returns_the_given_frames_and_makes_the_rest(model, strategy, count):
    video = given_video()
    out = vin.generate(model, frames=16, steps=2, seed=1, strategy=strategy, init_video=video, init_frames=count)
    assert out.video.shape == (16, 16, 16, 3) and out.given_frames == count
    np.testing.assert_array_equal(out.video[:count].numpy(), video[:count])
    free = vin.generate(model, frames=16, steps=2, seed=1, strategy=strategy).video.float()
    change = (out.video.float() - free).abs().amax(dim=(1, 2, 3))  # per frame
    if strategy != "independent":
        assert change[count:].max() > 0  # the given frames steer the rest
    else:  # nothing passes between its chunks: the chunks after the given frames' are as without them
        after = -(-count // F) * F
        assert change[after:].max() == 0
        assert after == count or change[count:after].max() > 0


def test_the_sampler_keeps_the_given_frames_at_every_steps_level():
    """Before each model call the given frames of x_t are the given frames noised to that step's sigma with their
    share of the initial noise (replacement); the rest of x_t is the sampler's own."""
    g = torch.Generator().manual_seed(0)
    noise, frames = torch.randn(1, 3, 8, 4, 4, generator=g), torch.rand(1, 3, 3, 4, 4, generator=g) * 2 - 1
    known = Known(frames, noise[:, :, :3], Objective("flow"))
    sampler = Sampler(make_scheduler("flow"), 4, True, False, known)
    seen = []

    def predict(x, t, i):
        seen.append((x.clone(), t[0].item(), i))
        return torch.zeros_like(x) + 0.5

    out = sampler.run(noise, predict)
    sigmas = sampler.sigmas
    for x, t, i in seen:
        torch.testing.assert_close(x[:, :, :3], (1 - sigmas[i]) * frames + sigmas[i] * noise[:, :, :3])
        assert t == pytest.approx(sigmas[i] * 1000, rel=1e-5)
    torch.testing.assert_close(seen[0][0][:, :, 3:], noise[:, :, 3:])  # the rest starts as the noise
    torch.testing.assert_close(out[:, :, :3], frames)  # and the sample ends with the given frames exactly
    # a chain over frames [2, 8) of the video (autoregressive's chunks) keeps only the given frame it holds
    part = Sampler(make_scheduler("flow"), 4, True, False, known).run(noise[:, :, 2:], predict, start=2)
    torch.testing.assert_close(part[:, :, :1], frames[:, :, 2:3])


@pytest.mark.parametrize("kind", ["flow", "epsilon", "v"])
def test_reconstruction_guidance_moves_the_rest_down_the_given_frames_error(kind):
    """A model whose clean estimate of every frame is the mean of x_t's frames: the given frames' error
    sum_k |m - g_k|^2 has gradient sum_k 2 (m - g_k) / T on every frame, so guidance w moves the other frames'
    clean estimate to m - w * sum_k (m - g_k) / T, and leaves the given frames' as it was."""
    g = torch.Generator().manual_seed(1)
    x, frames = torch.randn(1, 2, 5, 3, 3, generator=g), torch.randn(1, 2, 2, 3, 3, generator=g)
    objective, t = Objective(kind), torch.tensor([700.0])
    mean = x.mean(dim=2, keepdim=True).expand_as(x)
    predict = lambda xx, tt, i: objective.prediction(xx, xx.mean(dim=2, keepdim=True).expand_as(xx), t)  # noqa: E731
    sampler = Sampler(make_scheduler(kind), 2, True, False, Known(frames, torch.zeros_like(frames), objective, 0.8))
    sampler.level = lambda i, time: time  # the model's time is the level here (no scheduler sigmas to read)
    x0 = objective.clean(x, sampler.reconstruction_guided(predict, x, t, 0, 0), t)
    want = mean[:, :, 2:] - 0.8 * (mean[:, :, :2] - frames).sum(dim=2, keepdim=True) / 5
    torch.testing.assert_close(x0[:, :, 2:], want, rtol=0, atol=1e-4)
    torch.testing.assert_close(x0[:, :, :2], mean[:, :, :2], rtol=0, atol=1e-4)


def test_reconstruction_guidance_brings_the_rest_closer_to_the_given_frames(model):
    """On the tiny model, guidance steers the generated frames towards the given ones (mean distance to them)."""
    video = given_video(16)
    far = {}
    for w in (0.0, 1.0):
        out = vin.generate(model, frames=16, steps=3, seed=1, init_video=video, init_frames=8, init_guidance=w)
        far[w] = np.abs(out.video[8:].numpy().astype(float) - video[8:].mean(0)).mean()
    assert far[1.0] < far[0.0]


def test_autoregressive_given_its_own_first_chunk_makes_its_own_video(model):
    """Autoregressive's chunk 1 depends on chunk 0's clean frames alone: given them, the video is the same."""
    options = GenerationOptions(frames=12, steps=3, seed=2, progress=False)
    own = run_strategy(model, "autoregressive", options).sample  # (1, C, T, H, W)
    again = run_strategy(model, "autoregressive", options, init=own[:, :, :F]).sample
    torch.testing.assert_close(again, own, rtol=0, atol=1e-6)


def test_fifo_starts_its_queue_after_the_given_chunks(model):
    options = GenerationOptions(frames=16, steps=4, seed=0, queue=2, progress=False)
    given = torch.rand(1, 3, 2 * F, 16, 16) * 2 - 1
    out = run_strategy(model, "fifo", options, init=given)
    assert out.model_calls == (4 - 1 - 2) * 2 + 4  # (N - 1 - given chunks) * lag + steps
    torch.testing.assert_close(out.sample[:, :, : 2 * F], given)


def test_an_upscaled_video_is_reduced_with_a_warning(model):
    video = given_video(8)
    big = video.repeat(4, axis=1).repeat(4, axis=2)  # as `vin generate --upscale 4` writes it
    with pytest.warns(UserWarning, match="the init video is 64x64, 4 times the 16x16 frames made: reduced by averaging"):
        out = vin.generate(model, frames=16, steps=2, init_video=big, init_frames=4)
    np.testing.assert_array_equal(out.video[:4].numpy(), video[:4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vin.generate(model, frames=16, steps=2, init_video=video, init_frames=4)  # the right size: no warning


@pytest.mark.parametrize("kwargs, message", [
    (dict(init_video=given_video(size=12)), "the init video is 12x12 and this request makes 16x16 frames"),
    (dict(init_video=given_video(size=24)), "the init video is 24x24 and this request makes 16x16 frames"),
    (dict(init_video=given_video(4), init_frames=6), "init_frames=6 but the init video has only 4 frames"),
    (dict(init_video=given_video(20)), "the init video gives 20 frames and the output has 16: nothing is left to generate"),
    (dict(init_frames=2), r"--init-frames \(init_frames=\) counts the frames kept from --init-video \(init_video=\): give the video"),
    (dict(init_video=given_video().astype(np.float32)), r"must be \(T, H, W, 3\) uint8 RGB frames .* got float32"),
    (dict(init_video="missing.mp4"), "video missing.mp4 does not exist"),
    (dict(init_video=given_video(), init_frames=0), "init_frames must be a whole number of at least 1, got 0"),
    (dict(init_mode="clean"), r"--init-mode clean \(init_mode=\) says how --init-video's frames are given: give the video"),
    (dict(init_video=given_video(), init_mode="clean", strategy="fifo"), "init_mode=clean gives vin's wholly given chunks"),
    (dict(init_video=given_video(), init_mode="fresh"), "init_mode must be one of noised, clean, got 'fresh'"),
])  # fmt: skip
def test_a_continuation_that_cannot_fit_is_one_line(model, kwargs, message):
    with pytest.raises(VinError, match=message):
        vin.generate(model, frames=16, steps=2, **kwargs)


@pytest.mark.parametrize("count", [4, 6])  # one whole chunk; a chunk and a half (the half replaced and guided)
def test_clean_mode_gives_the_whole_given_chunks_clean_at_time_zero(model, monkeypatch, count):
    """init_mode=clean: every model call sees the wholly given chunks as given, at time 0, and the other chunks at
    the step's time (a time per chunk, as train.init_prob trains); the output starts with the given frames."""
    video, seen = given_video(), []
    inner = model.denoise_chunks

    def spy(x, t, *args, **kwargs):
        seen.append((x.detach().clone(), t.detach().clone()))
        return inner(x, t, *args, **kwargs)

    monkeypatch.setattr(model, "denoise_chunks", spy)
    out = vin.generate(model, frames=16, steps=3, seed=1, init_video=video, init_frames=count, init_mode="clean")
    np.testing.assert_array_equal(out.video[:count].numpy(), video[:count])
    given = torch.from_numpy(video[:F]).permute(3, 0, 1, 2).float() / 127.5 - 1  # (C, F, H, W)
    steps = sorted({float(t[0, 1]) for _, t in seen}, reverse=True)
    assert len(steps) == 3 and steps[0] > 900
    for x, t in seen:
        assert t.shape == (1, 4) and t[0, 0] == 0 and (t[0, 1:] == t[0, 1]).all()
        torch.testing.assert_close(x[0, :, :F], given, atol=1e-6, rtol=0)
    noised = vin.generate(model, frames=16, steps=3, seed=1, init_video=video, init_frames=count)
    assert (out.video[count:].float() - noised.video[count:].float()).abs().max() > 0


def test_vin_generate_continues_a_video_file(cli_checkpoint, tmp_path):
    first = tmp_path / "first.npy"
    run = CliRunner().invoke(main, ["generate", "--checkpoint", str(cli_checkpoint), "--frames", "8", "--steps", "2",
                                    "--out", str(first), "--quiet"])  # fmt: skip
    assert run.exit_code == 0, run.output
    out = tmp_path / "more.npy"
    run = CliRunner().invoke(main, ["generate", "--checkpoint", str(cli_checkpoint), "--frames", "16", "--steps", "2",
                                    "--init-video", str(first), "--init-frames", "4", "--out", str(out), "--json", "--quiet"])  # fmt: skip
    assert run.exit_code == 0, run.output
    assert json.loads(run.output)["given_frames"] == 4
    np.testing.assert_array_equal(np.load(out)[:4], np.load(first)[:4])
    run = CliRunner().invoke(main, ["generate", "--checkpoint", str(cli_checkpoint), "--frames", "16", "--init-frames", "4",
                                    "--out", str(tmp_path / "x.npy")])  # fmt: skip
    assert run.exit_code != 0 and "--init-frames (init_frames=) counts the frames kept from --init-video (init_video=): give the video" in run.output
    assert not (tmp_path / "x.npy").exists()


def test_given_pixels_round_trip_exactly():
    frames = given_video(2)
    x = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1
    np.testing.assert_array_equal(to_uint8(x), frames)


def test_reconstruction_guidance_counts_its_backward_pass_in_the_memory_check(model, monkeypatch):
    from vin.generation import memory
    from vin.generation.strategies import plan

    o = GenerationOptions(frames=64, steps=2, progress=False)
    p = plan(model, "vin", o)
    plain, guided = memory.estimate_bytes(model, "vin", p), memory.estimate_bytes(model, "vin", p, backward=True)
    assert guided > 2 * plain  # the activations kept for the backward pass (35 copies per block, depth 2)
    monkeypatch.setattr(memory, "available_bytes", lambda device: (plain + guided) // 2)
    video = given_video(8)
    vin.generate(model, frames=64, steps=1, init_video=video, init_frames=4, init_guidance=0.0)  # fits without it
    with pytest.raises(VinError, match=r"or continue with --init-guidance 0 \(init_guidance=0: no backward pass\)"):
        vin.generate(model, frames=64, steps=1, init_video=video, init_frames=4)


def test_vin_continues_from_independent_noise_unless_asked(model, monkeypatch):
    from vin.generation import strategies as S

    o, shuffled = GenerationOptions(frames=16, steps=2, progress=False), GenerationOptions(frames=16, noise="shuffled")
    assert S.plan(model, "vin", o).noise == "shuffled" and S.plan(model, "vin", o, continued=True).noise == "independent"
    assert S.plan(model, "vin", shuffled, continued=True).noise == "shuffled"  # an asked noise is kept
    assert S.plan(model, "freenoise", o, continued=True).noise == "shuffled"  # FreeNoise's noise is its method
    drawn = []
    inner = S.video_noise
    monkeypatch.setattr(S, "video_noise", lambda m, p, *a: drawn.append(p.noise) or inner(m, p, *a))
    vin.generate(model, frames=16, steps=2, init_video=given_video(), init_frames=4)
    vin.generate(model, frames=16, steps=2)
    assert drawn == ["independent", "shuffled"]
