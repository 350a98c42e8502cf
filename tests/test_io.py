import json
import os

import numpy as np
import pytest
import torch

from vin.errors import VinError
from vin.io import load_model, read_video, write_video

from .conftest import tiny_model


def test_save_pretrained_from_pretrained_gives_identical_outputs(tmp_path):
    model = tiny_model(coupling="cross", num_classes=3)
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    loaded = load_model(tmp_path)
    x, t = torch.randn(1, 3, 8, 16, 16), torch.tensor([250.0])
    with torch.no_grad():
        assert torch.equal(model(x, t, torch.tensor([2])), loaded(x, t, torch.tensor([2])))
    assert loaded.config.coupling == "cross" and not loaded.training


def test_bad_checkpoints_fail_clearly(tmp_path):
    with pytest.raises(VinError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(VinError, match="has no config.json"):
        load_model(tmp_path)
    tiny_model().save_pretrained(tmp_path)
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.raises(VinError, match="could not be loaded"):
        load_model(tmp_path)
    weights.write_bytes(b"not a safetensors file at all")
    with pytest.raises(VinError, match="could not be loaded"):
        load_model(tmp_path)
    # weights from another shape of model
    tiny_model(width=64).save_pretrained(tmp_path / "other")
    (tmp_path / "other" / "diffusion_pytorch_model.safetensors").replace(weights)
    with pytest.raises(VinError, match="could not be loaded"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{ not json")
    with pytest.raises(VinError, match="not valid JSON"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(VinError, match="not VINModel"):
        load_model(tmp_path)


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


def test_checkpoint_names_and_paths(tmp_path):
    from vin.io import checkpoint_path, default_checkpoint

    assert checkpoint_path(None) == default_checkpoint() == checkpoint_path("default")
    assert checkpoint_path("full") == default_checkpoint("full") and checkpoint_path("full").name == "full"
    assert checkpoint_path(tmp_path / "mine") == tmp_path / "mine"
    with pytest.raises(VinError, match="no shipped checkpoint named 'best'"):
        default_checkpoint("best")


def test_a_config_that_does_not_match_its_weights_is_refused(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    for change, message in (({"depth": 3}, r"no tensor 'blocks.2"), ({"num_classes": 5}, r"no tensor 'y_embedder"),
                            ({"depth": 1}, r"an unexpected tensor 'blocks.1"), ({"width": 64}, r"is \(32,\), the config makes \(64,\)"),
                            ({"mystery": 1}, r"settings this version of vin does not know \(mystery\)")):  # fmt: skip
        (tmp_path / "config.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(VinError, match=message):
            load_model(tmp_path)


def test_retired_options_load_at_their_old_value_and_are_refused_otherwise(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**meta, "registers": 0, "read_locality": "none"}))
    x, t = torch.randn(1, 3, 8, 16, 16), torch.tensor([250.0])
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path)(x, t), model(x, t))
    (tmp_path / "config.json").write_text(json.dumps({**meta, "registers": 4}))
    with pytest.raises(VinError, match=r"model.registers=4 is an option that was retired"):
        load_model(tmp_path)
