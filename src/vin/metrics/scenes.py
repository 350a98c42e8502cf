"""Scene cuts with PySceneDetect's content detector, the paper's count of abrupt changes.

Frames are fed from memory (no file round trip). Defaults are PySceneDetect's: threshold 27 on the
HSV content score, at least 15 frames between cuts.
"""

from __future__ import annotations

import numpy as np
from scenedetect.common import FrameTimecode
from scenedetect.detectors import ContentDetector

DEFAULT_THRESHOLD = 27.0
DEFAULT_MIN_SCENE_LEN = 15


def scene_cuts(
    frames: np.ndarray, fps: float = 16.0, threshold: float = DEFAULT_THRESHOLD, min_scene_len: int = DEFAULT_MIN_SCENE_LEN
) -> list[int]:
    """Frame indices where a new scene starts, for frames (T, H, W, 3) uint8 RGB."""
    detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_len)
    cuts: list[int] = []
    for i, frame in enumerate(frames):
        bgr = np.ascontiguousarray(frame[..., ::-1])  # OpenCV's channel order, which the detector expects
        cuts += [c.frame_num for c in detector.process_frame(FrameTimecode(i, fps), bgr)]
    if len(frames):
        cuts += [c.frame_num for c in detector.post_process(FrameTimecode(len(frames) - 1, fps))]
    return sorted(set(cuts))
