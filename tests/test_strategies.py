import pytest
import torch

from vin.errors import VinError
from vin.generation import STRATEGIES, GenerationOptions, generate, run_strategy
from vin.diffusion.sampling import GuidedModel, Sampler
from vin.generation.strategies import RUNNERS, freenoise_noise, fusion_steps, plan

from .conftest import tiny_model

F = 4  # the tiny model's chunk frames


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def sample(model, strategy: str, frames: int, seed: int = 0, steps: int = 3, **options) -> torch.Tensor:
    o = GenerationOptions(frames=frames, steps=steps, seed=seed, progress=False, **options)
    return run_strategy(model, strategy, o).sample


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("chunks", [1, 2, 4, 8])
def test_every_strategy_shapes_and_dtypes(model, strategy, chunks):
    g = generate(model, frames=chunks * F, steps=2, seed=1, strategy=strategy)
    assert g.video.shape == (chunks * F, 16, 16, 3) and g.video.dtype == torch.uint8
    assert g.strategy == strategy and g.model_calls >= 2 and g.seconds >= 0


def test_model_calls_match_the_method(model):
    steps, n = 3, 4
    calls = {s: generate(model, frames=n * F, steps=steps, strategy=s) for s in STRATEGIES}
    assert calls["vin"].model_calls == steps and calls["vin"].window_calls == n * steps  # one batched call per step
    assert calls["autoregressive"].model_calls == n * steps  # N chains, one after the other
    assert calls["autoregressive"].window_calls == n * steps
    assert calls["independent"].model_calls == steps and calls["independent"].window_calls == n * steps
    assert calls["full"].model_calls == steps and calls["full"].window_calls == steps  # one window: the whole video
    assert calls["spectral"].model_calls == steps
    windows = len(range(0, n * F - F + 1, F // 2))  # windows of F frames every F/2
    assert calls["overlap"].window_calls == windows * steps and calls["overlap"].model_calls == steps


def test_overlap_with_zero_overlap_equals_independent(model):
    torch.testing.assert_close(sample(model, "overlap", 4 * F, overlap_frames=0), sample(model, "independent", 4 * F))


def test_freenoise_noise_is_a_permutation_of_the_base_window():
    noise = torch.randn(1, 3, 5 * F + 2, 2, 2)
    out = freenoise_noise(noise, F, torch.Generator().manual_seed(0))
    base = noise[:, :, :F]
    torch.testing.assert_close(out[:, :, :F], base)
    shuffled = False
    for start in range(F, out.shape[2], F):
        block = out[:, :, start : start + F]
        # every frame of the block is one of the base window's frames, each used at most once
        matches = [[torch.equal(block[:, :, i], base[:, :, j]) for j in range(F)] for i in range(block.shape[2])]
        assert all(sum(row) == 1 for row in matches)
        used = [row.index(True) for row in matches]
        assert len(set(used)) == len(used)
        shuffled |= used != list(range(len(used)))
    assert shuffled


def test_freenoise_uses_rescheduled_noise(model):
    a = sample(model, "freenoise", 4 * F, overlap_frames=0)
    b = sample(model, "overlap", 4 * F, overlap_frames=0)
    torch.testing.assert_close(a[:, :, :F], b[:, :, :F])  # the base window keeps its noise
    assert (a[:, :, F:] - b[:, :, F:]).abs().max() > 1e-3


def test_freenoise_is_overlap_with_shuffled_noise(model):
    """The noise option is what separates FreeNoise from plain overlapping windows, both ways round."""
    torch.testing.assert_close(sample(model, "overlap", 4 * F, noise="shuffled"), sample(model, "freenoise", 4 * F))
    torch.testing.assert_close(sample(model, "freenoise", 4 * F, noise="independent"), sample(model, "overlap", 4 * F))


def test_shuffled_noise_gives_every_chunk_the_first_chunks_frames(model):
    """With the chunks unconnected (no context, no fusion, chunk tokens), vin with shuffled noise is each chunk
    sampled alone from a permutation of chunk 0's noise: chunk 0 is unchanged, and the
    others differ from the independent-noise video."""
    apart = {"fusion_schedule": "none", "context_frames": 0, "global_tokens": "chunk"}
    shuffled = sample(model, "vin", 4 * F, noise="shuffled", **apart)
    independent = sample(model, "vin", 4 * F, noise="independent", **apart)
    torch.testing.assert_close(shuffled[:, :, :F], independent[:, :, :F])
    assert (shuffled[:, :, F:] - independent[:, :, F:]).abs().max() > 1e-3
    # the permutations the generator draws after the noise, as `freenoise_noise` draws them
    g = torch.Generator().manual_seed(0)
    torch.randn(1, 4 * F, model.config.in_channels, 16, 16, generator=g)
    perms = [torch.randperm(F, generator=g) for _ in range(3)]
    g0 = torch.Generator().manual_seed(0)
    base = torch.randn(1, 4 * F, model.config.in_channels, 16, 16, generator=g0).transpose(1, 2)[:, :, :F]  # (B, C, F, H, W)
    for i, perm in enumerate(perms, start=1):  # chunk i: a one-chunk video sampled from chunk 0's noise permuted
        o = GenerationOptions(frames=F, steps=3, seed=0, progress=False, **apart)
        p = plan(model, "vin", o)
        sampler = Sampler(model.make_scheduler(p.scheduler, p.clip), o.steps, p.clip, False)
        alone = RUNNERS["vin"](model, p, o, base[:, :, perm].contiguous(), GuidedModel(model, None, 1.0), sampler, None)
        torch.testing.assert_close(shuffled[:, :, i * F : (i + 1) * F], alone, rtol=1e-4, atol=1e-4)


def test_spectral_cutoffs_give_its_branches(model):
    local = sample(model, "spectral", 4 * F, cutoff=0.0)  # every frequency from the local branch
    glob = sample(model, "spectral", 4 * F, cutoff=1.0)  # every frequency from the global branch
    torch.testing.assert_close(glob, sample(model, "full", 4 * F))  # the global branch is full attention
    assert (local - glob).abs().max() > 1e-3
    mid = sample(model, "spectral", 4 * F, cutoff=0.5)
    assert (mid - local).abs().max() > 1e-4 and (mid - glob).abs().max() > 1e-4


def test_autoregressive_first_chunk_equals_a_one_chunk_generation(model):
    long = sample(model, "autoregressive", 3 * F, seed=5)
    one = sample(model, "vin", F, seed=5)
    torch.testing.assert_close(long[:, :, :F], one)


@pytest.mark.parametrize("tokens", ["chunk", "none"])
def test_vin_without_fusion_context_or_global_tokens_equals_independent(model, tokens):
    apart = dict(fusion_schedule="none", context_frames=0, noise="independent")
    ablated = sample(model, "vin", 4 * F, global_tokens=tokens, **apart)
    independent = sample(model, "independent", 4 * F, context_frames=0, global_tokens=tokens)
    torch.testing.assert_close(ablated, independent, rtol=1e-4, atol=1e-4)
    # with global tokens, the chunks are connected: the result differs
    connected = sample(model, "vin", 4 * F, **apart)
    assert (connected - independent).abs().max() > 1e-4


def test_fusion_schedules():
    assert fusion_steps("early", 0.4, 50) == range(20)
    assert fusion_steps("late", 0.4, 50) == range(30, 50)
    assert fusion_steps("mid", 0.4, 50) == range(15, 35)
    assert fusion_steps("none", 0.4, 50) == range(0)
    assert fusion_steps("early", 0.0, 50) == range(0)
    huge = fusion_steps("late", 0.4, 10**12)  # no set of 4e11 indices: a range, however many steps
    assert len(huge) == 4 * 10**11 and 10**12 - 1 in huge and 0 not in huge


def test_fusion_schedule_changes_the_vin_sample(model):
    early = sample(model, "vin", 4 * F, steps=4, fusion_schedule="early", fusion_fraction=0.5)
    late = sample(model, "vin", 4 * F, steps=4, fusion_schedule="late", fusion_fraction=0.5)
    none = sample(model, "vin", 4 * F, steps=4, fusion_schedule="none")
    assert (early - none).abs().max() > 1e-4 and (late - none).abs().max() > 1e-4


@pytest.mark.parametrize(
    "strategy, options, message",
    [
        ("nope", {}, "unknown strategy 'nope'"),
        ("vin", {"frames": 10}, "10 frames cannot be cut into chunks of 4 frames"),
        ("overlap", {"frames": 2}, "do not tile into windows of 4 frames"),
        ("overlap", {"frames": 12, "overlap_frames": 4}, "overlap_frames=4 must be a multiple of 2 in \\[0, 4\\)"),
        ("freenoise", {"frames": 10, "overlap_frames": 0}, "use 12"),
        ("full", {"frames": 7}, "multiple of the temporal patch size"),
        ("vin", {"frames": 8, "fusion_schedule": "sometimes"}, "fusion_schedule must be one of"),
        ("vin", {"frames": 8, "fusion_schedule": "late"}, "fusion_schedule='late' places fusion_fraction of the steps"),
        ("spectral", {"frames": 8, "cutoff": 2.0}, r"cutoff must be a number in \[0, 1\], got 2.0"),
        ("vin", {"frames": 8, "context_frames": 8}, "context_frames=8"),
        ("vin", {"frames": 8, "noise": "pink"}, "noise must be one of independent, shuffled, got 'pink'"),
    ],
)
def test_impossible_requests_fail_before_any_work(model, strategy, options, message):
    with pytest.raises(VinError, match=message):  # options that are bad alone fail as they are made
        plan(model, strategy, GenerationOptions(**{"frames": 8, **options}))


def test_full_positions_are_squeezed_into_the_trained_range(model):
    p = plan(model, "full", GenerationOptions(frames=8 * F))
    assert p.time_scale == pytest.approx((F // 2 - 1) / (8 * F // 2 - 1))
    assert plan(model, "full", GenerationOptions(frames=F)).time_scale == 1.0
    assert plan(model, "full", GenerationOptions(frames=8 * F, position_interpolation=False)).time_scale == 1.0


def test_class_conditional_guided_strategies():
    m = tiny_model(num_classes=3)
    for strategy in ("vin", "autoregressive", "overlap", "spectral"):
        g = generate(m, frames=2 * F, steps=2, strategy=strategy, label=1, guidance=2.0)
        assert g.video.shape == (2 * F, 16, 16, 3)


def test_fifo_is_diagonal_denoising_with_a_local_queue():
    from vin.diffusion.sampling import GuidedModel, Sampler, initial_noise
    from vin.generation.strategies import _fifo

    model = tiny_model(coupling="cross")
    o = GenerationOptions(frames=4 * F, steps=4, queue=2, progress=False)  # lag 2: chunk 0 is done before chunk 2 starts
    p = plan(model, "fifo", o)
    noise = initial_noise(model, 1, 4 * F, 16, torch.Generator().manual_seed(0))
    call = GuidedModel(model, None, 1.0)
    sampler = Sampler(model.make_scheduler(p.scheduler, p.clip), o.steps, p.clip, progress=False)  # as run_strategy
    a = _fifo(model, p, o, noise, call, sampler, None)
    assert call.model_calls == 3 * 2 + 4 and call.window_calls == 4 * 4  # (N-1)*lag + steps calls, steps per chunk
    other = noise.clone()
    other[:, :, 2 * F :] = torch.randn(other[:, :, 2 * F :].shape, generator=torch.Generator().manual_seed(5))
    b = _fifo(model, p, o, other, GuidedModel(model, None, 1.0), sampler, None)
    torch.testing.assert_close(a[:, :, :F], b[:, :, :F])  # chunk 0 never met chunks 2 and 3
    assert (a[:, :, 2 * F :] - b[:, :, 2 * F :]).abs().max() > 1e-3
    # a queue of one chunk: chunk 0 is sampled alone, as a one-chunk vin video from the same noise
    one = _fifo(model, p, GenerationOptions(frames=4 * F, steps=4, queue=1, progress=False), noise, GuidedModel(model, None, 1.0), sampler, None)
    alone = run_strategy(model, "vin", GenerationOptions(frames=F, steps=4, progress=False), torch.Generator().manual_seed(0)).sample
    torch.testing.assert_close(one[:, :, :F], alone, atol=1e-4, rtol=1e-4)
    with pytest.raises(VinError, match=r"queue must be a whole number of at least 1, got 0"):
        plan(model, "fifo", GenerationOptions(frames=4 * F, steps=4, queue=0))


@pytest.mark.parametrize("strategy, frames", [("vin", 32), ("vin", 64), ("overlap", 32), ("full", 32), ("independent", 64)])
def test_the_memory_estimate_bounds_what_sampling_holds(model, strategy, frames):
    """The estimate checked before sampling is above the measured peak of live tensors, and not far above."""
    from vin.bench.memory import LiveTensorMemory
    from vin.generation.memory import estimate_bytes
    from vin.generation.options import make_options
    from vin.generation.strategies import plan

    o = make_options(frames, 2, 0, progress=False)
    with LiveTensorMemory() as mem:
        run_strategy(model, strategy, o)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    estimate = estimate_bytes(model, strategy, plan(model, strategy, o)) - weights
    assert mem.peak < estimate < 4 * mem.peak, (mem.peak, estimate)


def test_a_video_too_long_for_memory_is_refused_before_any_work(model, monkeypatch):
    import vin.generation.memory as memory
    from vin.generation.api import check_request

    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * 2**20)  # 10 MiB free
    check_request(model, "vin", GenerationOptions(frames=16))
    with pytest.raises(VinError, match=r"4096 frames with vin need about 0.\d GiB, but cpu has 0.0 GiB free; ask for fewer frames \(about \d+ would fit\)"):
        check_request(model, "vin", GenerationOptions(frames=4096))


def test_compiled_blocks_make_the_same_video(tmp_path, cli_checkpoint):
    """`vin generate --compile` (torch.compile of the DiT blocks, `compile_blocks`) samples what eager sampling
    samples, within one uint8 level (the compiled kernels may order float sums differently)."""
    import numpy as np
    from click.testing import CliRunner

    from vin.cli import main

    videos = {}
    for extra in ([], ["--compile"]):
        out = tmp_path / f"v{len(extra)}.npy"
        result = CliRunner().invoke(main, ["generate", "--checkpoint", str(cli_checkpoint), "--frames", "8", "--steps", "2",
                                           "--seed", "3", "--out", str(out), "--quiet", *extra])  # fmt: skip
        assert result.exit_code == 0, result.output
        videos[bool(extra)] = np.load(out).astype(int)
    assert np.abs(videos[True] - videos[False]).max() <= 1


def test_windows_run_in_groups_make_the_same_video_in_less_memory(model):
    """window_batch: the DiT runs the chunks' windows a few at a time; each window reads only its own frames and Z,
    so the video is the one a single call makes (up to float rounding), while one group's activations are alive."""
    from vin.bench.memory import LiveTensorMemory
    from vin.generation.memory import call_tokens

    peaks, videos = {}, {}
    for batch in (8, 3, 1):
        with torch.no_grad(), LiveTensorMemory() as mem:
            videos[batch] = generate(model, frames=8 * F, steps=3, seed=2, window_batch=batch).video.int()
        peaks[batch] = mem.peak
    for batch in (3, 1):
        assert (videos[batch] - videos[8]).abs().max() <= 1
    assert peaks[1] < peaks[3] < peaks[8], peaks
    o = GenerationOptions(frames=8 * F, window_batch=3)
    every = plan(model, "vin", GenerationOptions(frames=8 * F))  # the default, 16, is more than the 8 chunks: all at once
    assert plan(model, "vin", o).window_batch == 3 and every.window_batch == 8
    assert call_tokens(model, "vin", plan(model, "vin", o)) * 8 == call_tokens(model, "vin", every) * 3
    with pytest.raises(VinError, match="window_batch must be a whole number of at least 1, got 0"):
        GenerationOptions(frames=8 * F, window_batch=0)
    shared = tiny_model(context_mode="shared", coupling="cross")  # borrows context inside one call: never grouped
    assert plan(shared, "vin", o).window_batch == 8
