"""Model options beyond the paper: shared context (attention banded by chunk) and factorised attention."""

import pytest
import torch

from vin.errors import VinError
from vin.generation import check_request
from vin.generation.strategies import GenerationOptions, run_strategy
from vin.model.attention import Attention
from vin.model.vin import VINModel, WindowLayout

from .conftest import TINY, evaluate, read, tiny_model, windows

FR, K, S = 4, 2, 16  # tiny model: chunk frames, context frames, tokens per patch-frame (patch_t = 2)


def video(chunks: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, chunks * FR, 16, 16, generator=torch.Generator().manual_seed(seed))


def masked_attention(attn: Attention, x: torch.Tensor, allowed: torch.Tensor, extra_k=None, extra_v=None, bias=None):
    """Reference: attention of x (B, L, D) to [extra keys; x] where `allowed` (L, E + L) says so, plus a score bias."""
    q, k, v = attn._qkv(x, x)
    if extra_k is not None:
        k, v = torch.cat([extra_k.expand(k.shape[0], -1, -1, -1), k], 2), torch.cat([extra_v.expand(v.shape[0], -1, -1, -1), v], 2)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + (0 if bias is None else bias)
    out = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1) @ v
    return attn.finish(out)


def banded_reference(model: VINModel, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Shared context written the slow way: the whole video as ONE sequence (local positions per chunk), each
    chunk's queries masked to its own tokens, its predecessor's last K frames (+ a key offset) or the placeholder."""
    b, n = x.shape[0], x.shape[2] // FR
    tokens, _ = model.embed_windows(x, FR, 0)  # (B*N, L, D), L = FR/2 * S
    length = tokens.shape[1]
    tokens = tokens.reshape(b, n * length, -1)
    lent = (K // 2) * S  # borrowed tokens
    chunk_of = torch.arange(n * length) // length
    pos_in = torch.arange(n * length) % length
    own = chunk_of[:, None] == chunk_of[None, :]
    borrowed = (chunk_of[:, None] == chunk_of[None, :] + 1) & (pos_in[None, :] >= length - lent)
    placeholder = (chunk_of[:, None] == 0).expand(-1, lent)
    allowed = torch.cat([placeholder, own | borrowed], dim=1)

    def attend(block, h):
        i = list(model.blocks).index(block)
        place_k, place_v, offset = (p.view(block.attn.heads, 1, -1) for p in model.shared_context[i])
        q, _, _ = block.attn._qkv(h, h)
        q_offset = (q @ offset.transpose(-1, -2)) / q.shape[-1] ** 0.5  # (B, H, L, 1): q . offset, scaled
        bias = borrowed.float() * q_offset  # (B, H, L, L)
        bias = torch.cat([bias.new_zeros(bias.shape[:-1] + (lent,)), bias], dim=-1)
        return masked_attention(block.attn, h, allowed, place_k.expand(-1, lent, -1), place_v.expand(-1, lent, -1), bias)

    z = read(model, x, t)
    c = model.condition(t, None)
    out = model.run_blocks(tokens, c, z, attend)  # (B, N*L, D)
    return model.decode_windows(out.reshape(b * n, length, -1), c.repeat_interleave(n, 0), b, 16, 16)


def test_shared_context_equals_banded_attention_over_the_whole_video():
    # cross coupling: the reference's one sequence has no per-chunk VIN tokens to append
    model = tiny_model(context_mode="shared", coupling="cross", parameterization="direct")
    x, t = video(3, batch=2), torch.tensor([600.0, 200.0])
    with torch.no_grad():
        fast = model(x, t)  # (B, N, C, K+F, H, W)
        slow = banded_reference(model, x, t)  # (B, N, C, F, H, W)
    torch.testing.assert_close(fast[:, :, :, K:], slow, rtol=1e-4, atol=1e-5)
    # the context frames' predictions are their owners': chunk i's context = chunk i-1's last K frames
    torch.testing.assert_close(fast[:, 1:, :, :K], fast[:, :-1, :, -K:], rtol=0, atol=0)


@pytest.mark.parametrize("coupling", ["concat", "cross"])
def test_shared_without_context_equals_recompute_without_context(coupling):
    shared = tiny_model(context_mode="shared", coupling=coupling)
    recompute = VINModel(**{**TINY, "coupling": coupling})
    recompute.load_state_dict({k: v for k, v in shared.state_dict().items() if k != "shared_context"})
    x, t = video(3), torch.tensor([400.0])
    with torch.no_grad():
        torch.testing.assert_close(evaluate(shared, x, t, context_frames=0), evaluate(recompute.eval(), x, t, context_frames=0), rtol=0, atol=0)


def test_shared_context_locality_and_gradients():
    model = tiny_model(context_mode="shared", vin_tokens=0).train()  # no VIN: chunks meet only through context
    x = video(3).requires_grad_(True)
    out = model(x, torch.tensor([500.0]))
    assert out.shape == (1, 3, 3, K + FR, 16, 16)
    out[:, 1, :, K:].square().sum().backward()
    grad = x.grad.abs().sum(dim=(0, 1, 3, 4))  # per frame
    assert grad[FR - K : FR].min() > 0  # chunk 0's last K frames: lent to chunk 1
    assert grad[FR : 2 * FR].min() > 0  # chunk 1 itself
    assert grad[2 * FR :].max() == 0  # chunk 2: chunk 1 never sees it
    assert model.shared_context.grad[:, 2].abs().sum() > 0  # the offset of borrowed keys learns
    # the placeholder serves chunk 0, which lends its tail to chunk 1 from the next layer on: the first
    # block's placeholder reaches chunk 1's loss, the last block's does not
    assert model.shared_context.grad[0, :2].abs().sum() > 0
    assert model.shared_context.grad[-1, :2].abs().sum() == 0
    assert all(p.grad is not None for n, p in model.named_parameters() if n != "context_placeholder")


def test_shared_context_runs_in_the_strategies_and_refuses_outside_context():
    model = tiny_model(context_mode="shared")
    for strategy in ("vin", "autoregressive", "independent", "full"):
        out = run_strategy(model, strategy, GenerationOptions(frames=8, steps=2, progress=False))
        assert out.sample.shape == (1, 3, 8, 16, 16) and torch.isfinite(out.sample).all()
    with pytest.raises(VinError, match="takes no context"):
        windows(model, video(2), torch.tensor([1.0]), context=torch.zeros(1, 3, K, 16, 16))
    with pytest.raises(VinError, match="context_mode=recompute"):
        check_request(model, "vin", GenerationOptions(frames=8), world=2)


def test_layout_spatial_and_temporal_equal_masked_attention():
    torch.manual_seed(0)
    attn = Attention(32, 2)
    b, n, frames = 2, 3, 2
    layout = WindowLayout(b, n, frames, S, borrow_frames=1)
    h = torch.randn(b * n, frames * S, 32)
    frame = torch.arange(frames * S) // S
    spot = torch.arange(frames * S) % S
    with torch.no_grad():
        spatial = masked_attention(attn, h, frame[:, None] == frame[None, :])
        temporal = masked_attention(attn, h, spot[:, None] == spot[None, :])
        torch.testing.assert_close(layout.spatial(attn, h), spatial, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(layout.temporal(attn, h, None), temporal, rtol=1e-5, atol=1e-5)
        # banded temporal: chunk i's position s also sees position s of chunk i-1's last frame
        lent = torch.randn(3, 32)
        banded = layout.temporal(attn, h, lent).unflatten(0, (b, n))
        whole = h.unflatten(0, (b, n))
        for i in range(1, n):
            prev = whole[:, i - 1, (frames - 1) * S :]  # (B, S, D): the lent frame
            q, k, v = attn._qkv(whole[:, i], whole[:, i])
            _, kp, vp = attn._qkv(prev, prev)
            kp = kp + lent[2].view(2, 1, 16)
            keys, values = torch.cat([kp, k], 2), torch.cat([vp, v], 2)
            allowed = torch.cat([torch.eye(S, dtype=torch.bool)[spot], spot[:, None] == spot[None, :]], dim=1)
            scores = (q @ keys.transpose(-1, -2) / 4.0).masked_fill(~allowed, float("-inf"))
            ref = attn.finish(torch.softmax(scores, -1) @ values)
            torch.testing.assert_close(banded[:, i], ref, rtol=1e-5, atol=1e-5)


def test_factorised_attention_model():
    model = tiny_model(attention="factorised", coupling="cross")
    assert all(block.temporal for block in model.blocks)
    x, t = video(2), torch.tensor([300.0])
    with torch.no_grad():
        out = model(x, t)
        x2 = x.clone()
        x2[:, :, FR:, :4, :4] += 1.0  # chunk 1, top-left patch only
        out2 = evaluate(model, x2, t, keyframe_stride=100)  # keyframe 0 only: the VIN does not see the change
        base = evaluate(model, x, t, keyframe_stride=100)
    assert out.shape == (1, 2, 3, K + FR, 16, 16)
    torch.testing.assert_close(out2[:, 0], base[:, 0], rtol=0, atol=0)  # chunk 0 untouched
    assert (out2[:, 1] - base[:, 1]).abs().max() > 1e-3
    for strategy in ("vin", "full", "overlap"):
        assert run_strategy(model, strategy, GenerationOptions(frames=8, steps=1, progress=False)).sample.shape[2] == 8
    with pytest.raises(VinError, match="factorised"):
        run_strategy(model, "spectral", GenerationOptions(frames=8, steps=1, progress=False))
    with pytest.raises(VinError, match="coupling=cross"):
        VINModel(**{**TINY, "attention": "factorised", "coupling": "concat"})
    with pytest.raises(VinError, match="context_mode"):
        VINModel(**{**TINY, "context_mode": "banded"})


def test_factorised_shared_context_is_local_and_differentiable():
    model = tiny_model(attention="factorised", coupling="cross", context_mode="shared", vin_tokens=0)
    x = video(3).requires_grad_(True)
    model(x, torch.tensor([500.0]))[:, 1, :, K:].sum().backward()
    grad = x.grad.abs().sum(dim=(0, 1, 3, 4))
    assert grad[FR - K : FR].min() > 0 and grad[2 * FR :].max() == 0


def test_full_attention_model_denoises_the_whole_clip_as_one_window():
    from vin.diffusion.objective import Objective

    model = tiny_model(vin_tokens=0, context_frames=0, full_frames=16)
    x, t = video(4), torch.tensor([500.0])  # 16 frames
    with torch.no_grad():
        out = model(x, t)
    assert out.shape == (1, 1, 3, 16, 16, 16)  # one window: no chunks, no context
    x2 = x.clone()
    x2[:, :, -2:] += 3.0  # the last frames reach the first ones: full attention
    with torch.no_grad():
        assert (model(x2, t)[:, 0, :, :2] - out[:, 0, :, :2]).abs().max() > 1e-4
    loss = Objective("flow").loss(model.train(), x, None, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and model.patch_embed.proj.weight.grad.abs().sum() > 0
    model.eval()
    opts = GenerationOptions(frames=32, steps=2, seed=0, progress=False)
    sample = run_strategy(model, "full", opts).sample  # twice the trained length: positions squeezed into 0..7
    assert sample.shape[2] == 32
    from vin.generation.strategies import plan

    assert plan(model, "full", opts).time_scale == pytest.approx(7 / 15)
    with pytest.raises(VinError, match="full-attention model"):
        check_request(model, "vin", GenerationOptions(frames=16, steps=2))
    with pytest.raises(VinError, match="full_frames"):
        VINModel(**{**TINY, "full_frames": 5})
