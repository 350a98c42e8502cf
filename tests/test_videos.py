import os

import numpy as np
import pytest

from vin.errors import VinError
from vin.videos import read_video, write_video


def frames(t: int = 12) -> np.ndarray:
    """A smooth colour gradient with a bright square moving one pixel per frame."""
    yy, xx = np.mgrid[0:16, 0:16]
    base = np.stack([yy * 12 + 30, xx * 12 + 30, np.full_like(yy, 120)], -1)
    video = np.repeat(base[None], t, axis=0)
    for i in range(t):
        video[i, 4:8, i % 12 : i % 12 + 4] = 240
    return video.astype(np.uint8)


@pytest.mark.parametrize("suffix", [".mp4", ".gif", ".npy"])
def test_write_and_read_back(tmp_path, suffix):
    video = frames()
    path = write_video(video, tmp_path / f"v{suffix}", fps=8, upscale=2)
    back = read_video(path)
    if suffix == ".npy":
        np.testing.assert_array_equal(back, video)  # lossless, never upscaled
    else:
        assert back.shape == (12, 32, 32, 3)
        small = back[:, ::2, ::2].astype(float)
        assert np.abs(small - video).mean() < 6  # lossy codecs, but the same picture
    assert [p.name for p in tmp_path.iterdir()] == [f"v{suffix}"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_errors_leave_nothing(tmp_path):
    with pytest.raises(VinError, match="does not exist; create it first"):
        write_video(frames(), tmp_path / "missing" / "v.mp4")
    with pytest.raises(VinError, match="must end in one of"):
        write_video(frames(), tmp_path / "v.avi")
    with pytest.raises(VinError, match="uint8"):
        write_video(frames().astype(np.float32), tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


def test_read_errors(tmp_path):
    with pytest.raises(VinError, match="does not exist"):
        read_video(tmp_path / "none.mp4")
    (tmp_path / "text.mp4").write_text("hello")
    with pytest.raises(VinError, match="could not be decoded"):
        read_video(tmp_path / "text.mp4")
