"""Training on a folder of real clips with broken files; exact resume; the NaN guard; checkpoint errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from vin.cli import main
from vin.config import load_config
from vin.errors import VinError
from vin.checkpoint import load_model
from vin.videos import read_video
from vin.train import train
from vin.train_state import check_state, list_checkpoints


ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


def folder_overrides(videos: Path, out: Path, *extra: str) -> list[str]:
    return ["data.source=folder", f"data.root={videos}", "train.windows_per_step=4", "train.chunk_counts=[1,2]",
            f"train.out_dir={out}", "train.save_every=5", *extra]  # fmt: skip


def test_vin_train_on_real_clips_with_bad_files(videos, tmp_path):
    out = tmp_path / "run"
    args = ["train", str(TINY), *folder_overrides(videos, out, "train.steps=4", "train.sample_every=4",
            "train.sample_frames=8", "train.sample_steps=2", f"data.cache_dir={tmp_path / 'cache'}"), "--quiet"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "skipped 4 of 6 videos (unreadable, corrupt or too short)" in result.output, result.output
    assert "trained 4 steps" in result.output
    report = json.loads((out / "data_report.json").read_text())
    assert set(report["skipped_files"]) == {"notes.mp4", "truncated.mp4", "short.mp4", "truncated_late.mp4"}
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_video(out / "samples" / "step_0000004.mp4").shape[0] == 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips_per_s"] > 0 and summary["data"]["cache"]["misses"] >= 1
    load_model(out)  # the exported EMA model loads


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_resume_is_exact(videos, tmp_path):
    """10 steps in one go == 5 steps, stop, resume, 5 more: the same weights, EMA and optimizer, bit for bit."""
    common = ["train.steps=10", "train.lr_schedule=cosine", "train.grad_accum=2", "train.warmup_steps=3",
              "train.windows_per_step=2", "train.init_prob=0.5"]  # fmt: skip (continuations draw too)
    cached = [f"data.cache_dir={tmp_path / 'cache'}"]  # the cache changes nothing but the speed
    train(load_config(TINY, folder_overrides(videos, tmp_path / "a", *common)), progress=False)
    train(load_config(TINY, folder_overrides(videos, tmp_path / "b", *common, *cached, "train.stop_at=5")), progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == ["step_0000005"]
    train(load_config(TINY, folder_overrides(videos, tmp_path / "b", *common, *cached, "train.resume=auto")), progress=False)
    for name in ("model.safetensors", "ema.safetensors", "optimizer.safetensors"):
        a = weights(tmp_path / "a" / "checkpoints" / "step_0000010" / name)
        b = weights(tmp_path / "b" / "checkpoints" / "step_0000010" / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    rows_a = (tmp_path / "a" / "log.jsonl").read_text().splitlines()
    rows_b = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    losses = [[json.loads(r)["loss"] for r in rows if "loss" in json.loads(r)] for rows in (rows_a, rows_b)]
    assert losses[0] == losses[1]
    gaps = [[json.loads(r)["loss_gap"] for r in rows if "loss_gap" in json.loads(r)] for rows in (rows_a, rows_b)]
    assert gaps[0][-1] == gaps[1][-1]  # the same held-out probe of the same weights


def nan_after(loss, after: int):
    """Objective.loss, but NaN from the `after`-th call on (a loss that blows up)."""
    calls = []

    def patched(self, *args, **kwargs):
        calls.append(1)
        value = loss(self, *args, **kwargs)
        return value * float("nan") if len(calls) >= after else value

    return patched


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from vin.diffusion.objective import Objective

    monkeypatch.setattr(Objective, "loss", nan_after(Objective.loss, after=8))
    out = tmp_path / "run"
    config = load_config(TINY, ["train.steps=10", f"train.out_dir={out}", "train.save_every=5"])
    with pytest.raises(VinError, match=r"training stopped at step 8: the loss is nan; the last good checkpoint is .*step_0000005"):
        train(config, progress=False)
    assert [p.name for p in list_checkpoints(out)] == ["step_0000005"]
    load_model(out)  # the exported model is the step-5 EMA, loadable
    assert check_state(out / "checkpoints" / "step_0000005", config)["step"] == 5
    assert json.loads((out / "log.jsonl").read_text().splitlines()[-1])["stopped"] == "the loss is nan"


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("short")
    train(load_config(TINY, ["train.steps=2", f"train.out_dir={out}"]), progress=False)
    return out


@pytest.mark.parametrize("missing", ["optimizer.safetensors", "rng.safetensors", "state.json"])
def test_resuming_from_an_incomplete_checkpoint_fails_clearly(short_run, tmp_path, missing):
    import shutil

    ckpt = tmp_path / "step_0000002"
    shutil.copytree(short_run / "checkpoints" / "step_0000002", ckpt)
    (ckpt / missing).unlink()
    config = load_config(TINY, ["train.steps=4", f"train.out_dir={tmp_path / 'next'}", f"train.resume={ckpt}"])
    with pytest.raises(VinError, match=f"is incomplete: no {missing}"):
        train(config, progress=False)


def test_resuming_with_another_config_fails_clearly(short_run, tmp_path):
    ckpt = short_run / "checkpoints" / "step_0000002"
    config = load_config(TINY, ["train.steps=4", "model.width=64", f"train.out_dir={tmp_path}", f"train.resume={ckpt}"])
    with pytest.raises(VinError, match=r"is from another config \(model\.width: 32 in the checkpoint, 64 now"):
        train(config, progress=False)
    with pytest.raises(VinError, match=r"is from another config \(train\.seed: 0 in the checkpoint, 1 now"):
        check_state(ckpt, load_config(TINY, ["train.steps=2", "train.seed=1"]))
    # a longer run, or a lower learning rate after a divergence, may continue from it
    assert check_state(ckpt, load_config(TINY, ["train.steps=40", "train.lr=1e-4", f"train.out_dir={tmp_path}"]))["step"] == 2



def test_a_checkpoint_from_before_a_setting_existed_resumes_at_its_default(short_run, tmp_path):
    """A train.yaml written before train.weight_decay existed, with options since retired at their old values."""
    import shutil

    import yaml

    ckpt = tmp_path / "step_0000002"
    shutil.copytree(short_run / "checkpoints" / "step_0000002", ckpt)
    saved = yaml.safe_load((ckpt / "train.yaml").read_text())
    del saved["train"]["weight_decay"]
    saved["train"].update(context_dropout=0.0, context_loss=0.0)
    saved["model"].update(registers=0, read_locality="none", keyframe_positions="none")
    (ckpt / "train.yaml").write_text(yaml.safe_dump(saved))
    assert check_state(ckpt, load_config(TINY, ["train.steps=4"]))["step"] == 2
    with pytest.raises(VinError, match=r"train\.weight_decay: '<missing>' in the checkpoint, 0.5 now"):
        check_state(ckpt, load_config(TINY, ["train.steps=4", "train.weight_decay=0.5"]))


def test_a_fresh_run_does_not_overwrite_a_run(short_run):
    with pytest.raises(VinError, match="already holds a run's checkpoints; continue it with train.resume=auto"):
        train(load_config(TINY, ["train.steps=2", f"train.out_dir={short_run}"]), progress=False)


def test_exported_model_missing_a_file_fails_clearly(short_run, tmp_path):
    import shutil

    copy = tmp_path / "ckpt"
    shutil.copytree(short_run, copy)
    (copy / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(VinError, match="has no diffusion_pytorch_model.safetensors"):
        load_model(copy)
