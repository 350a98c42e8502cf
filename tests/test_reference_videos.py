"""Behaviour kept: the shipped models make the same videos as when tests/data/reference_videos.npz was stored
(within one uint8 level, for another CPU's rounding), for every strategy."""

import numpy as np
import pytest

from .reference_cases import CASES, STORE, make


@pytest.fixture(scope="module")
def stored():
    return np.load(STORE)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_same_video_as_stored(stored, name):
    video = make(name)
    reference = stored[name]
    assert video.shape == reference.shape
    diff = np.abs(video.astype(np.int16) - reference.astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, f"{name}: max {diff.max()}, {(diff > 0).mean():.4f} of the values differ"
