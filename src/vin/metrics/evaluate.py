"""Every metric of one video, as one flat row (the JSON schema of `vin eval`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from vin.errors import VinError
from vin.metrics.consistency import boundary_jump, feature_steps, vbench_consistency
from vin.metrics.features import FeatureExtractor
from vin.metrics.flow import optical_flow
from vin.metrics.motion import flow_score, frame_differences, mawe_of, motion_scores, moves, temporal_flickering, warp_errors
from vin.metrics.procedural import procedural_checks
from vin.metrics.scenes import scene_cuts

# Metrics that a table aggregates (mean and spread), in the order it shows them.
METRICS = (
    "mawe", "scene_cuts", "subject_consistency", "background_consistency", "dynamic_degree", "temporal_flickering",
    "boundary_jump", "boundary_jump_warp", "boundary_jump_feature", "background_drift", "sprite_color_changes",
    "sprite_count_change", "trajectory_acceleration", "track_breaks", "flops", "seconds",
)  # fmt: skip
LOWER_IS_BETTER = {"mawe", "scene_cuts", "boundary_jump", "boundary_jump_warp", "boundary_jump_feature", "background_drift",
                   "sprite_color_changes", "sprite_count_change", "trajectory_acceleration", "track_breaks", "flops", "seconds"}  # fmt: skip


@dataclass
class VideoMetrics:
    """One row of `vin eval --json`. Fields are stable; None where a figure does not apply."""

    video: str  # file path, or "<strategy>/<frames>/<seed>" for generated videos
    strategy: str  # generation strategy, "data" for procedural reference videos, "file" for user files
    frames: int
    seed: int | None
    height: int
    width: int
    chunk_frames: int
    mawe: float  # StreamingT2V's motion-aware warp error (lower is better)
    warp_error: float  # mean squared warp error, RGB in [0, 1]
    flow_score: float  # mean optical-flow magnitude, pixels per frame
    scene_cuts: int  # PySceneDetect content-detector cuts
    scene_cut_frames: list[int]
    subject_consistency: float  # VBench formula on the feature model's subject features
    background_consistency: float  # VBench formula on the feature model's background features
    dynamic_degree: float  # 1.0 if the video moves (VBench), else 0.0
    motion_score: float  # mean VBench motion score over pairs
    temporal_flickering: float  # VBench: 1.0 for a still video
    boundary_jump: float | None  # frame difference across chunk boundaries / inside chunks
    boundary_jump_warp: float | None  # the same ratio for the warp error
    boundary_jump_feature: float | None  # the same ratio for the feature distance
    background_drift: float | None  # procedural checks (None when not asked for)
    sprite_color_changes: float | None
    sprite_count_change: float | None
    trajectory_acceleration: float | None
    track_breaks: float | None
    flops: int | None  # FLOPs of generating the video (None for files)
    seconds: float | None  # wall time of generating it (None for files)
    model_calls: int | None
    feature_model: str
    flow_method: str

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_video(
    frames: np.ndarray,
    features: FeatureExtractor,
    chunk_frames: int,
    *,
    video: str,
    strategy: str = "file",
    seed: int | None = None,
    fps: float = 16.0,
    flow_method: str = "dis",
    procedural: bool = False,
    flops: int | None = None,
    seconds: float | None = None,
    model_calls: int | None = None,
) -> VideoMetrics:
    """All metrics of frames (T, H, W, 3) uint8."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VinError(f"{video}: expected uint8 RGB frames (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}; "
                       "give a colour video (a .npy must hold a (T, H, W, 3) uint8 array)")
    if len(frames) < 2:
        raise VinError(f"{video}: a video needs at least 2 frames to be evaluated, it has {len(frames)}")
    if chunk_frames < 1:
        raise VinError(f"chunk frames must be at least 1, got {chunk_frames}")
    flow = optical_flow(frames, method=flow_method)
    errors = warp_errors(flow)
    ofs = flow_score(flow)
    scores = motion_scores(frames, fps, flow_method)  # one flow at ~8 fps serves dynamic degree and motion score
    feats = features(frames)
    truth = procedural_checks(frames, chunk_frames) if procedural else {}
    return VideoMetrics(
        video=video, strategy=strategy, frames=len(frames), seed=seed, height=frames.shape[1], width=frames.shape[2],
        chunk_frames=chunk_frames,
        mawe=mawe_of(float(errors.mean()), ofs), warp_error=float(errors.mean()), flow_score=ofs,
        scene_cut_frames=(cuts := scene_cuts(frames, fps)), scene_cuts=len(cuts),
        subject_consistency=vbench_consistency(feats.subject),
        background_consistency=vbench_consistency(feats.background),
        dynamic_degree=moves(scores, min(frames.shape[1:3])),
        motion_score=float(scores.mean()) if len(scores) else 0.0,
        temporal_flickering=temporal_flickering(frames),
        boundary_jump=boundary_jump(frame_differences(frames), chunk_frames),
        boundary_jump_warp=boundary_jump(errors, chunk_frames),
        boundary_jump_feature=boundary_jump(feature_steps(feats.subject), chunk_frames),
        background_drift=truth.get("background_drift"), sprite_color_changes=truth.get("sprite_color_changes"),
        sprite_count_change=truth.get("sprite_count_change"),
        trajectory_acceleration=truth.get("trajectory_acceleration"), track_breaks=truth.get("track_breaks"),
        flops=flops, seconds=seconds, model_calls=model_calls, feature_model=features.name, flow_method=flow_method,
    )  # fmt: skip
