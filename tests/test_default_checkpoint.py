"""The shipped checkpoint loads and, past its longest training clip, still makes videos, not noise."""

import numpy as np
import pytest

import vin
from vin.data.synthetic import SyntheticVideos


@pytest.fixture(scope="module")
def model():
    return vin.load_model()


def roughness(frames: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference between neighbouring pixels, and between consecutive frames."""
    x = frames.astype(np.float32)
    spatial = (np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean()) / 2
    temporal = np.abs(np.diff(x, axis=0)).mean()
    return float(spatial), float(temporal)


def test_shipped_checkpoint_is_small_and_complete(model):
    path = vin.default_checkpoint()
    size = sum(p.stat().st_size for p in path.iterdir())
    assert size < 20 * 2**20
    assert (path / "README.md").is_file() and (path / "train.yaml").is_file()
    assert model.config.sample_size == 32


def test_twice_the_longest_training_clip_is_as_far_from_noise_at_the_end(model):
    import yaml

    train = yaml.safe_load((vin.default_checkpoint() / "train.yaml").read_text())["train"]
    f = model.config.chunk_frames
    chunks = 2 * max(train["chunk_counts"])  # twice the longest clip seen in training
    video = vin.generate(model, frames=chunks * f, steps=12, seed=5).video.numpy()
    first, last = video[: 2 * f], video[-2 * f :]
    noise = np.random.default_rng(0).integers(0, 256, first.shape).astype(np.uint8)
    real = SyntheticVideos().video(5, 2 * f).frames
    s_first, t_first = roughness(first)
    s_last, t_last = roughness(last)
    s_noise, t_noise = roughness(noise)
    s_real, t_real = roughness(real)
    # both ends look like the training videos, far from noise ...
    for s, t in ((s_first, t_first), (s_last, t_last)):
        assert s < 0.35 * s_noise and t < 0.2 * t_noise, (s, t, s_noise, t_noise)
        assert s < 2.5 * s_real and t < 5 * max(t_real, 1.0), (s, t, s_real, t_real)
    # ... and the last chunks are no noisier than the first
    assert s_last < 1.5 * s_first and t_last < 1.5 * t_first + 1.0


def test_the_shipped_models_dit_reads_its_vin(model):
    """Held-out clips of 4 chunks at sigma 0.85: another clip's Z_t costs at least 5% more loss than the clip's own."""
    import torch

    from vin.metrics.probe import loss_gap
    from vin.metrics.suite import training_data_config

    data = SyntheticVideos(training_data_config(vin.default_checkpoint()))
    clips = torch.stack([data.clip(seed, 4 * model.config.chunk_frames)[0] for seed in range(200, 204)])
    gap = loss_gap(model, clips, 0.85, torch.Generator().manual_seed(0))
    assert gap["gap"] >= 0.05, gap
    assert gap["own_chunk"] > gap["global"], gap  # the whole clip tells a chunk more than the chunk itself
