import pytest
import torch

from vin.data.synthetic import SyntheticConfig, SyntheticVideos
from vin.diffusion.objective import Objective
from vin.diffusion.sampling import denoise
from vin.generation import GenerationOptions, generate, run_strategy
from vin.model.vin import VINModel
from vin.model.windows import assemble

from .conftest import TINY, tiny_model


def fixed_loss(objective: Objective, model: VINModel, x0: torch.Tensor) -> float:
    with torch.no_grad():
        return objective.loss(model, x0, None, torch.Generator().manual_seed(123)).item()


@pytest.mark.parametrize("kind", ["flow", "v"])
def test_tiny_model_overfits_a_tiny_batch(kind):
    torch.manual_seed(0)
    model = VINModel(**TINY, objective=kind, parameterization="x0" if kind == "flow" else "direct")
    objective = Objective(kind)
    data = SyntheticVideos(SyntheticConfig(height=16, width=16, sprite_size=6))
    x0, _ = data.batch(torch.Generator().manual_seed(0), 2, 8)  # 2 clips of 2 chunks
    start = fixed_loss(objective, model, x0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(80):  # the same clips, noise and times every step: pure memorisation
        loss = objective.loss(model, x0, None, torch.Generator().manual_seed(123))
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = fixed_loss(objective, model, x0)
    assert end < 0.4 * start, (start, end)


def test_objective_noising_and_targets():
    x0, noise = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 4, 2, 2)
    flow = Objective("flow")
    t = torch.tensor([0.0, 1000.0])
    xt = flow.add_noise(x0, noise, t)
    torch.testing.assert_close(xt[0], x0[0])  # sigma 0: clean
    torch.testing.assert_close(xt[1], noise[1])  # sigma 1: pure noise
    torch.testing.assert_close(flow.target(x0, noise, t), noise - x0)
    v = Objective("v")
    t = torch.tensor([10.0, 900.0])
    a, b = v._coefficients(t, x0)
    torch.testing.assert_close(a**2 + b**2, torch.ones_like(a))  # variance preserving
    # x0 is recovered from x_t and the v target: x0 = a * x_t - b * v
    torch.testing.assert_close(a * v.add_noise(x0, noise, t) - b * v.target(x0, noise, t), x0, rtol=1e-4, atol=1e-5)
    t = flow.sample_timesteps(1000, torch.Generator().manual_seed(0))
    assert t.min() > 0 and t.max() <= 1000


@pytest.mark.parametrize("kind", ["flow", "v"])
def test_a_time_per_chunk_noises_each_chunk_at_its_own_level(kind):
    x0, noise = torch.randn(2, 3, 8, 2, 2), torch.randn(2, 3, 8, 2, 2)
    objective = Objective(kind)
    t = torch.tensor([[100.0, 700.0], [400.0, 400.0]])  # (B, N): 2 chunks of 4 frames
    xt = objective.add_noise(x0, noise, t)
    for b in range(2):
        for i in range(2):
            one = objective.add_noise(x0[b : b + 1], noise[b : b + 1], t[b, i : i + 1])  # the same level for the whole clip
            torch.testing.assert_close(xt[b, :, 4 * i : 4 * i + 4], one[0, :, 4 * i : 4 * i + 4])
    torch.testing.assert_close(objective.target(x0, noise, t)[1], objective.target(x0, noise, t[:, 0])[1])


@pytest.mark.parametrize("kind", ["flow", "epsilon", "v"])
def test_same_seed_same_video_different_seed_different_video(kind):
    model = tiny_model(objective=kind, parameterization="x0" if kind == "flow" else "direct")
    a = generate(model, frames=16, steps=4, seed=3).video
    b = generate(model, frames=16, steps=4, seed=3).video
    c = generate(model, frames=16, steps=4, seed=4).video
    assert a.shape == (16, 16, 16, 3) and a.dtype == torch.uint8
    assert torch.equal(a, b)
    assert (a.float() - c.float()).abs().mean() > 1.0


def test_guidance_and_fusion_change_the_sample():
    model = tiny_model(num_classes=4)

    def sample(**options):
        o = GenerationOptions(frames=16, steps=3, progress=False, **options)
        return run_strategy(model, "vin", o, labels=torch.tensor([1])).sample

    base = sample()
    assert base.shape == (1, 3, 16, 16, 16)
    assert (sample(guidance=3.0) - base).abs().max() > 1e-3
    assert (sample(fusion_fraction=0.0) - base).abs().max() > 1e-4
    torch.testing.assert_close(sample(), base)


def test_more_chunks_than_training_and_sampling_time_options():
    model = tiny_model()
    v = generate(model, frames=64, steps=2, seed=0, context_frames=4, keyframe_stride=4).video  # 16 chunks, K=4
    assert v.shape == (64, 16, 16, 3)


def oracle(x0: torch.Tensor, kind: str):
    """A predictor that knows the clean video: the exact velocity / noise / v for any x_t."""
    objective = Objective(kind)

    def predict(x: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        if kind == "flow":
            return (x - x0) / (t.view(-1, 1, 1, 1, 1) / 1000)
        a, b = objective._coefficients(t, x)
        eps = (x - a * x0) / b
        return eps if kind == "epsilon" else a * eps - b * x0

    return predict


@pytest.mark.parametrize("kind", ["flow", "epsilon", "v"])
def test_denoising_loop_with_an_oracle_recovers_the_video(kind):
    x0 = torch.rand(1, 3, 12, 16, 16, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    out = denoise(kind, 6, noise, oracle(x0, kind), progress=False)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-3)



def test_continuation_clips_give_their_first_chunks_clean():
    flow = Objective("flow")
    t = torch.full((4000,), 500.0)
    given = flow.given_times(t, 4, 0.5, torch.Generator().manual_seed(0))  # (B, N)
    clean = given == 0
    assert given.shape == (4000, 4) and set(given.unique().tolist()) == {0.0, 500.0}
    assert torch.equal(clean, clean.cummin(dim=1).values)  # given chunks are a prefix
    assert not clean[:, -1].any()  # at least the last chunk is made
    assert abs(clean[:, 0].float().mean().item() - 0.5) < 0.03  # half the clips are continuations
    counts = clean.sum(1)[clean[:, 0]]
    assert all(abs((counts == g).float().mean().item() - 1 / 3) < 0.05 for g in (1, 2, 3))  # 1..N-1 uniform
    g = torch.Generator().manual_seed(1)
    assert flow.given_times(t, 1, 0.5, g) is t and flow.given_times(t, 4, 0.0, g) is t
    assert g.initial_seed() == 1 and torch.equal(g.get_state(), torch.Generator().manual_seed(1).get_state())  # nothing drawn


def test_given_chunks_take_no_part_in_the_loss():
    torch.manual_seed(0)
    model = VINModel(**TINY)
    flow = Objective("flow")
    x0, noise = torch.randn(2, 3, 12, 16, 16), torch.randn(2, 3, 12, 16, 16)  # 3 chunks of 4 frames
    t = torch.tensor([[0.0, 700.0, 700.0], [0.0, 0.0, 300.0]])
    with torch.no_grad():
        loss = flow.loss(model, x0, None, t=t, noise=noise)
        pred = assemble(model(flow.add_noise(x0, noise, t), t, None), TINY["context_frames"], fuse=False)
        err = (pred - flow.target(x0, noise, t)).pow(2)  # (B, C, T, H, W)
        made = torch.cat([err[0, :, 4:].flatten(), err[1, :, 8:].flatten()])
        torch.testing.assert_close(loss, made.mean())
        same = torch.tensor([[700.0] * 3, [300.0] * 3])  # a time per chunk, none given: the plain loss
        torch.testing.assert_close(flow.loss(model, x0, None, t=same, noise=noise), flow.loss(model, x0, None, t=same[:, 0], noise=noise))
