import pytest
import torch

from vin.errors import VinError
from vin.model.attention import Attention
from vin.model.vin import assemble, check_geometry

from .conftest import read, tiny_model, windows

F, K = 4, 2  # tiny model: chunk and context frames


def video(chunks: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, chunks * F, 16, 16, generator=torch.Generator().manual_seed(seed))


def chunk(x: torch.Tensor, i: int) -> slice:
    return slice(i * F, (i + 1) * F)


@pytest.mark.parametrize("coupling", ["concat", "cross"])
def test_locality_with_fixed_z_and_globality_through_vin(coupling):
    model = tiny_model(coupling=coupling)
    x = video(4)
    t = torch.tensor([500.0])
    z = read(model, x, t)
    x2 = x.clone()
    x2[:, :, chunk(x, 3)] += 3 * video(1, seed=9)  # change chunk 3
    with torch.no_grad():
        base = windows(model, x, t, z=z)
        fixed_z = windows(model, x2, t, z=z)
        through_vin = model(x2, t)
    # chunk 1 does not neighbour chunk 3: unchanged with Z fixed ...
    torch.testing.assert_close(fixed_z[:, 1], base[:, 1], rtol=0, atol=1e-6)
    # ... chunk 3 itself did change, and chunk 4 would see its tail (not present here).
    assert (fixed_z[:, 3] - base[:, 3]).abs().max() > 1e-3
    # through the VIN (Z recomputed from the changed keyframes) chunk 1 changes too
    assert (through_vin[:, 1] - base[:, 1]).abs().max() > 1e-4  # 100x the float noise above


def test_neighbour_sees_context_only():
    model = tiny_model()
    x = video(3)
    t = torch.tensor([300.0])
    z = read(model, x, t)
    x2 = x.clone()
    x2[:, :, 0] += 1.0  # first frame of chunk 0: not in chunk 1's context (its last K frames)
    x3 = x.clone()
    x3[:, :, F - 1] += 1.0  # last frame of chunk 0: in chunk 1's context
    with torch.no_grad():
        base, a, b = (windows(model, v, t, z=z) for v in (x, x2, x3))
    torch.testing.assert_close(a[:, 1], base[:, 1], rtol=0, atol=1e-6)
    assert (b[:, 1] - base[:, 1]).abs().max() > 1e-3


@pytest.mark.parametrize("coupling", ["concat", "cross"])
def test_batched_chunks_equal_one_at_a_time(coupling):
    model = tiny_model(coupling=coupling)
    x = video(4, batch=2)
    t = torch.tensor([700.0, 100.0])
    with torch.no_grad():
        z = read(model, x, t)
        batched = windows(model, x, t, z=z)  # (B, N, C, K+F, H, W)
        for i in range(4):
            if i == 0:  # the first chunk alone: placeholder context
                alone = windows(model, x[:, :, chunk(x, 0)], t, z=z)[:, 0]
            else:  # chunk i with its predecessor, which supplies its context
                alone = windows(model, x[:, :, (i - 1) * F : (i + 1) * F], t, z=z)[:, 1]
            torch.testing.assert_close(batched[:, i], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunks", [1, 2, 4, 8])
def test_z_shape_is_independent_of_length_and_read_is_one_cross_attention(chunks):
    model = tiny_model()
    calls = []
    for name, module in model.interface.named_modules():
        if isinstance(module, Attention):
            module.register_forward_hook(lambda m, args, out, name=name: calls.append((name, len(args) > 1 and args[1] is not None)))
    z = read(model, video(chunks, batch=3), torch.full((3,), 500.0))
    assert z.shape == (3, 8, 32)  # (B, M, D) whatever the length
    cross = [name for name, is_cross in calls if is_cross]
    assert cross == ["read"], calls  # exactly one cross-attention over the keyframes
    assert len(calls) == 2  # the read and one process block's self-attention


def test_keyframes_are_every_sth_frame():
    model = tiny_model()
    x = video(2)
    tokens = model.interface.keyframe_tokens(x, stride=2)
    assert tokens.shape == (1, (2 * F // 2) * 16, 32)  # 4 keyframes of 4x4 patches
    x2 = x.clone()
    x2[:, :, 1::2] = 0  # non-keyframes do not matter to the read
    torch.testing.assert_close(read(model, x, torch.tensor([1.0])), read(model, x2, torch.tensor([1.0])))


def test_a_model_without_a_vin():
    m = tiny_model(vin_tokens=0)
    assert m.interface is None and read(m, video(2), torch.tensor([1.0])) is None
    assert m(video(2), torch.tensor([10.0])).shape == (1, 2, 3, K + F, 16, 16)


def test_class_labels_change_the_prediction():
    m = tiny_model(num_classes=3)
    x, t = video(2), torch.tensor([500.0])
    with torch.no_grad():
        a, b, null = m(x, t, torch.tensor([0])), m(x, t, torch.tensor([1])), m(x, t, None)
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(null, m(x, t, torch.tensor([3])))  # no label = the null label


def test_fresh_model_predicts_zero_and_gets_gradients_everywhere():
    from vin.model.vin import VINModel

    from .conftest import TINY

    x, t = video(2), torch.tensor([500.0])
    assert VINModel(**TINY, parameterization="direct")(x, t).abs().max() == 0  # adaLN-Zero: starts at zero
    # x0 parameterisation: the network predicts a clean video of zeros, i.e. velocity x_t / sigma
    own = assemble(VINModel(**TINY)(x, t), K, fuse=False)
    torch.testing.assert_close(own, x / 0.5)
    m = tiny_model()
    m(x, t).square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []  # VIN and DiT are trained end to end by one loss


def test_assemble_owner_and_fusion():
    b, n, c, h, w = 1, 3, 1, 2, 2
    windows = torch.zeros(b, n, c, K + F, h, w)
    windows[:, :, :, K:] = 1.0  # own frames predict 1
    windows[:, :, :, :K] = 3.0  # context frames predict 3
    plain = assemble(windows, K, fuse=False)
    assert plain.shape == (1, 1, n * F, 2, 2) and torch.all(plain == 1.0)
    fused = assemble(windows, K, fuse=True)
    # the tail of chunks 0 and 1 blends towards the next chunk's context prediction: 1 + 2 * (j+1)/(K+1)
    expected_tail = torch.tensor([1 + 2 * 1 / 3, 1 + 2 * 2 / 3])
    torch.testing.assert_close(fused[0, 0, F - K : F, 0, 0], expected_tail)
    torch.testing.assert_close(fused[0, 0, 2 * F - K : 2 * F, 0, 0], expected_tail)
    assert torch.all(fused[0, 0, 2 * F :] == 1.0)  # the last chunk has no successor


def test_check_geometry_messages():
    assert check_geometry(256, 16, 4, 2, 4) == 16
    with pytest.raises(VinError, match="cannot be cut into chunks of 16 frames.*240 or 256"):
        check_geometry(250, 16, 4, 2, 4)
    with pytest.raises(VinError, match="multiple of the temporal patch size"):
        check_geometry(30, 15, 4, 2, 4)
    with pytest.raises(VinError, match="context_frames"):
        check_geometry(32, 16, 20, 2, 4)
    with pytest.raises(VinError, match="frames must be positive"):
        check_geometry(0, 16, 4, 2, 4)


@pytest.mark.parametrize("context_mode", ["recompute", "shared"])
def test_one_time_per_chunk_equal_everywhere_is_one_time_per_video(context_mode):
    model = tiny_model(coupling="cross", context_mode=context_mode)
    x, t = video(3, batch=2), torch.tensor([300.0, 800.0])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t[:, None].expand(-1, 3)), model(x, t))
        torch.testing.assert_close(read(model, x, t[:, None].expand(-1, 3)), read(model, x, t))


@pytest.mark.parametrize("coupling", ["concat", "cross"])
def test_a_time_per_chunk_conditions_each_window_on_its_own(coupling):
    """No context (K=0), Z fixed: chunk i of a mixed-time video is chunk i of a video all at chunk i's time."""
    model = tiny_model(coupling=coupling)
    x, times = video(3), torch.tensor([[100.0, 500.0, 900.0]])
    with torch.no_grad():
        z = read(model, x, times)
        mixed = windows(model, x, times, z=z, context_frames=0)
        for i in range(3):
            alone = windows(model, x, times[:, i], z=z, context_frames=0)
            torch.testing.assert_close(mixed[:, i], alone[:, i])
        every = windows(model, x, times, z=z)
        for chunks in (slice(1, 3), slice(0, 2), slice(2, None)):  # slices of the chunks, with context: built alone
            torch.testing.assert_close(windows(model, x, times, z=z, chunks=chunks), every[:, chunks])


def test_context_frames_and_keyframes_carry_their_noise_level():
    model = tiny_model(coupling="cross")
    x = video(2)
    a, b = torch.tensor([[200.0, 700.0]]), torch.tensor([[600.0, 700.0]])  # only chunk 0's level differs
    with torch.no_grad():
        z = read(model, x, a)
        assert (read(model, x, b) - z).abs().max() > 1e-3  # the read sees the keyframes' levels
        with_context = [windows(model, x, t, z=z)[:, 1, :, K:] for t in (a, b)]
        assert (with_context[0] - with_context[1]).abs().max() > 1e-4  # chunk 1's context is chunk 0's frames
        no_context = [windows(model, x, t, z=z, context_frames=0)[:, 1] for t in (a, b)]
        torch.testing.assert_close(no_context[0], no_context[1])
    with pytest.raises(VinError, match=r"one per video or one per chunk"):
        windows(model, x, torch.tensor([[200.0, 700.0, 100.0]]), z=z)


def test_a_text_model_samples_from_token_embeddings_pooled_as_its_captions_were():
    import vin

    model = tiny_model(text_dim=8)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(1, 5, 8, generator=g)
    padded = torch.cat([tokens, torch.zeros(1, 3, 8)], 1)  # padding (guidance pads two prompts to one length)
    t = torch.tensor([300.0])
    with torch.no_grad():
        pooled = model.condition(t, tokens.mean(1))
        torch.testing.assert_close(model.condition(t, tokens), pooled)
        torch.testing.assert_close(model.condition(t, padded), pooled)
        torch.testing.assert_close(model.condition(t, torch.full_like(tokens, float("nan"))), model.condition(t, None))
    video = vin.generate(model, F, 2, 0, prompt_embeds=tokens, negative_prompt_embeds=torch.zeros(1, 2, 8), guidance=3.0).video
    assert video.shape == (F, 16, 16, 3)
