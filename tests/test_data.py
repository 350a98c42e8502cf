import numpy as np
import torch

from vin.data.synthetic import SyntheticConfig, SyntheticVideos


def test_same_seed_same_video_and_any_frame_range():
    data = SyntheticVideos()
    a, b = data.video(7, 48), data.video(7, 48)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.frames.shape == (48, 32, 32, 3) and a.frames.dtype == np.uint8
    later = data.video(7, 16, start=32)  # rendered directly, no need to render frames 0..31
    np.testing.assert_array_equal(later.frames, a.frames[32:])
    assert not np.array_equal(data.video(8, 48).frames, a.frames)


def test_ground_truth_is_consistent_with_the_frames():
    data = SyntheticVideos(SyntheticConfig(num_sprites=3))
    v = data.video(3, 300)
    assert v.sprites[0].kind == "digit" and v.label == v.sprites[0].digit
    assert 0 <= v.label <= 9
    size = v.sprites[0].size
    assert v.positions.shape == (3, 300, 2)
    assert v.positions.min() >= 0 and v.positions.max() <= 32 - size  # bounces keep sprites inside
    # constant speed between bounces: the second difference is zero except at a bounce
    acc = np.abs(np.diff(v.positions, n=2, axis=1))
    assert np.mean(acc < 1e-9) > 0.9
    # pixels far from every sprite show the background, unchanged over time
    covered = np.zeros((300, 32, 32), bool)
    for pos in v.positions:
        for t, (y, x) in enumerate(pos):
            covered[t, int(y) : int(y) + size + 2, int(x) : int(x) + size + 2] = True
    diff = np.abs(v.frames.astype(float) - v.background[None].round())
    assert diff[~covered].max() <= 1.0


def test_sprites_keep_their_colour():
    v = SyntheticVideos().video(11, 200)
    s = v.sprites[1]
    y, x = v.positions[1, :, 0], v.positions[1, :, 1]
    # the sprite's colour appears at its centre whenever its mask is solid there
    cy, cx = s.size // 2, s.size // 2
    if s.mask[cy, cx] > 0.99 and s.kind != "digit":
        centres = v.frames[np.arange(200), (y + cy).round().astype(int), (x + cx).round().astype(int)]
        assert np.abs(centres.astype(float) - s.color).max() < 40


def test_batch_is_seeded_and_scaled():
    data = SyntheticVideos()
    x1, y1 = data.batch(torch.Generator().manual_seed(0), 3, 16)
    x2, y2 = data.batch(torch.Generator().manual_seed(0), 3, 16)
    assert x1.shape == (3, 3, 16, 32, 32) and y1.shape == (3,)
    torch.testing.assert_close(x1, x2)
    assert x1.min() >= -1 and x1.max() <= 1
