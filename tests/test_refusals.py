"""Issue 27: no input passes silently wrong. Every case is a row of a table: a one-line error (exit 2, no file
left), a warning, or the right result. The demo's cases are in test_demo.py (through gradio's client)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from vin.cli import main
from vin.errors import VinError

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")


@pytest.fixture(scope="module")
def checkpoint(cli_checkpoint) -> Path:
    return cli_checkpoint


@pytest.fixture(scope="module")
def embeds(tmp_path_factory) -> dict[str, Path]:
    """Prompt embedding files (L=3, D=8): finite, with a NaN, with an Inf."""
    root = tmp_path_factory.mktemp("embeds")
    ok = torch.randn(3, 8)
    files = {}
    for name, value in (("ok", None), ("nan", float("nan")), ("inf", float("inf"))):
        emb = ok.clone()
        if value is not None:
            emb[1, 2] = value
        save_file({"emb": emb}, root / f"{name}.safetensors")
        files[name] = root / f"{name}.safetensors"
    return files


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def one_error_line(result) -> str:
    """The single 'error: ...' line of a failed command (exit 2)."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# vin generate: (extra arguments, what the one error line says, or None: it succeeds) --------------------------------
GENERATE = [
    (["--steps", "1000000000"], "steps must be at most 1000, got 1000000000"),  # refused at once: no set(range(1e9))
    (["--steps", str(10**30)], "steps must be at most 1000"),
    (["--steps", "1001"], "raise the bound with --max-steps"),
    (["--steps", "3", "--max-steps", "2"], "steps must be at most 2, got 3"),
    (["--steps", "3", "--max-steps", "3"], None),  # the bound is the user's to raise
    (["--max-steps", "0"], "max_steps must be a whole number of at least 1, got 0"),
    (["--prompt-embeds", "{nan}"], "NaN or Inf in 1 of 24 values"),
    (["--prompt-embeds", "{inf}"], "NaN or Inf in 1 of 24 values"),
    (["--prompt-embeds", "{ok}", "--negative-embeds", "{nan}", "--guidance", "3"], "nan.safetensors': NaN or Inf in 1 of 24 values"),
    (["--prompt-embeds", "{ok}", "--negative-embeds", "{ok}"], "a negative prompt acts only through guidance, which is off"),
]


@pytest.mark.parametrize("args, message", GENERATE, ids=[" ".join(a) for a, _ in GENERATE])
def test_generate_cases(checkpoint, embeds, tmp_path, args, message):
    args = [a.format(**{k: str(v) for k, v in embeds.items()}) for a in args]
    out = tmp_path / "out" / "v.npy"
    out.parent.mkdir()
    result = invoke("generate", "--checkpoint", str(checkpoint), "--frames", "8", "--steps", "2", "--quiet",
                    "--out", str(out), *args)  # fmt: skip
    if message is None:
        assert result.exit_code == 0, result.output
        assert np.load(out).shape[0] == 8
        return
    assert message in one_error_line(result)
    assert list(out.parent.iterdir()) == []


def test_fusion_schedule_of_a_huge_request_costs_nothing():
    from vin.generation.options import make_options
    from vin.generation.strategies import fusion_steps

    fused = fusion_steps("mid", 0.4, 10**15)  # a set would need petabytes
    assert len(fused) == 4 * 10**14 and 5 * 10**14 in fused
    o = make_options(8, 10**9, 0, max_steps=10**9)  # a user who raised the bound: the options hold, nothing is built
    assert o.steps == 10**9


# the Python API: prompt tensors and a negative prompt ---------------------------------------------------------------
NAN, INF = float("nan"), float("inf")
API = [
    ({"prompt_embeds": torch.full((1, 3, 8), NAN)}, "the prompt embeddings: NaN or Inf in 24 of 24 values"),
    ({"prompt_embeds": torch.ones(1, 3, 8), "negative_prompt_embeds": torch.full((1, 2, 8), INF), "guidance": 3.0},
     "the negative prompt embeddings: NaN or Inf in 16 of 16 values"),
    ({"prompt_embeds": torch.ones(1, 3, 8), "negative_prompt_embeds": torch.zeros(1, 2, 8)}, "which is off (guidance 1)"),
    ({"prompt_embeds": torch.ones(1, 3, 8), "steps": 5000}, "steps must be at most 1000, got 5000"),
]  # a negative prompt with guidance is sampled: tests/test_wan_train.py


@pytest.mark.parametrize("request_, message", API, ids=[m for _, m in API])
def test_generate_api_cases(request_, message):
    import vin

    from .conftest import tiny_model

    model = tiny_model(text_dim=8)
    request_ = {"steps": 1, **request_}
    with pytest.raises(VinError) as err:
        vin.generate(model, 4, seed=0, **request_)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_more_steps_than_ddim_has_is_one_line_not_a_traceback():
    import vin

    from .conftest import tiny_model

    model = tiny_model(objective="epsilon", parameterization="direct")  # sampled with DDIM (1000 timesteps)
    with pytest.raises(VinError, match=r"^steps must be at most 1000 with the DDIM scheduler .*, got 1001$"):
        vin.generate(model, 4, steps=1001, max_steps=2000, progress=False)  # the user raised the bound
    assert vin.generate(model, 4, steps=2, max_steps=2000, progress=False).video.shape[0] == 4


# vin eval FILES: the same file twice, a missing file ----------------------------------------------------------------
@pytest.fixture
def clip(tmp_path) -> Path:
    from vin.data.synthetic import SyntheticVideos
    from vin.videos import write_video

    (tmp_path / "clips").mkdir()
    path = tmp_path / "clips" / "ok.npy"
    write_video(SyntheticVideos().video(0, 16).frames, path)
    (tmp_path / "link.npy").symlink_to(path)
    os.link(path, tmp_path / "hard.npy")
    (tmp_path / "empty").mkdir()
    return path


EVAL = [  # (paths relative to the test's folder, rows expected, warnings expected; rows None: a one-line error)
    (["clips/ok.npy", "./clips/ok.npy"], 1, ["clips/ok.npy is the same file as clips/ok.npy"]),
    (["clips/ok.npy", "link.npy", "hard.npy"], 1, ["link.npy is the same file as", "hard.npy is the same file as"]),
    (["clips", "clips/ok.npy"], 1, ["clips/ok.npy is the same file as clips/ok.npy"]),  # the folder holds it
    (["clips/ok.npy", "missing.npy"], 1, ["skipped missing.npy: it does not exist"]),
    (["clips/ok.npy", "empty"], 1, ["skipped empty: it holds no video files"]),
    (["missing.npy"], None, ["no video to evaluate: missing.npy: it does not exist"]),
    (["missing.npy", "gone.npy"], None, ["no video to evaluate: missing.npy: it does not exist (and 1 more paths)"]),
]


@pytest.mark.parametrize("paths, rows, warnings", EVAL, ids=[" ".join(p) for p, _, _ in EVAL])
def test_eval_files_cases(clip, monkeypatch, paths, rows, warnings):
    monkeypatch.chdir(clip.parent.parent)
    report = clip.parent.parent / "empty" / "e.json"
    result = invoke("eval", *paths, "--features", "pixels", "--chunk-frames", "8", "--json", str(report), "--quiet")
    if rows is None:
        assert warnings[0] in one_error_line(result) and not report.exists()
        return
    assert result.exit_code == 0, result.output
    measured = json.loads(report.read_text())["rows"]
    assert len(measured) == rows and all(w in result.stderr for w in warnings), result.stderr
    assert len(result.stderr.strip().splitlines()) == len(warnings)


# training: a caption with NaN or Inf, an Inf loss with and without a checkpoint, a checkpoint left half-written ------
@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_a_non_finite_caption_is_refused_by_name(videos, tmp_path, value):
    captions = tmp_path / "captions.safetensors"
    bad = torch.randn(3, 8)
    bad[0, 5] = value
    save_file({"real/carphone.mp4": torch.randn(8), "real/carphone_distorted.mp4": bad}, captions)
    out = tmp_path / "run"
    result = invoke("train", TINY, "data.source=folder", f"data.root={videos}", f"data.captions={captions}",
                    "model.text_dim=8", "train.steps=2", f"train.out_dir={out}", "--quiet")  # fmt: skip
    line = one_error_line(result)
    assert "the embedding of real/carphone_distorted.mp4 has NaN or Inf in 1 of 24 values" in line, line
    assert not out.exists()


def _inf_loss_from(monkeypatch, step: int) -> None:
    """The objective's loss becomes Inf from training step `step` on (counted in calls: one per step here)."""
    from vin.diffusion.objective import Objective

    real, calls = Objective.loss, []

    def loss(self, *args, **kwargs):
        calls.append(1)
        value = real(self, *args, **kwargs)
        return value * math.inf if len(calls) >= step else value

    monkeypatch.setattr(Objective, "loss", loss)


@pytest.mark.parametrize("inf_at, advice, not_advised", [
    (1, "no checkpoint was written yet. Lower train.lr (now 0.001) or raise train.warmup_steps, then start the run again",
     "train.resume=auto"),
    (4, "the last good checkpoint is", "start the run again"),
])  # fmt: skip
def test_an_inf_loss_advises_resuming_only_from_a_checkpoint(monkeypatch, tmp_path, inf_at, advice, not_advised):
    from vin.config import load_config
    from vin.train import train

    _inf_loss_from(monkeypatch, inf_at)
    config = load_config(TINY, ["train.steps=6", "train.save_every=2", f"train.out_dir={tmp_path / 'run'}"])
    with pytest.raises(VinError) as err:
        train(config, progress=False)
    message = str(err.value)
    assert f"training stopped at step {inf_at}: the loss is inf" in message and advice in message, message
    assert not_advised not in message and "\n" not in message


def test_a_checkpoint_left_half_written_is_removed_at_the_next_start(tmp_path, caplog):
    out = tmp_path / "run"
    half = out / "checkpoints" / ".tmp-k1ll3d"
    half.mkdir(parents=True)
    (half / "model.safetensors").write_bytes(b"\0" * 100)  # the kill came mid-write
    (out / "checkpoints" / ".tmp-empty").mkdir()
    result = invoke("train", TINY, f"train.out_dir={out}", "train.steps=2", "train.save_every=2", "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0000002"]
    assert "removed" in caplog.text and ".tmp-k1ll3d" in caplog.text and ".tmp-empty" in caplog.text


# data_report.json: every file left out, and why ---------------------------------------------------------------------
def test_the_data_report_lists_every_file_left_out(tmp_path):
    from vin.config import DataConfig
    from vin.data.video_folder import VideoFolder
    from vin.videos import write_video

    root = tmp_path / "videos"
    (root / "clips").mkdir(parents=True)
    write_video(np.full((12, 16, 16, 3), 90, np.uint8), root / "clips" / "good.mp4")
    (root / "loop.mp4").symlink_to(root / "loop.mp4")  # a symlink loop: was left out without a word
    (root / "gone.mp4").symlink_to(root / "nowhere.mp4")
    (root / "folder.mp4").mkdir()
    (root / ".hidden.mp4").write_bytes(b"x")
    (root / "elsewhere").symlink_to(root / "clips")
    (root / "notes.txt").write_text("a caption file")
    report = VideoFolder(DataConfig(source="folder", root=str(root), height=16, width=16), 8).report()
    assert report["skipped_files"] == {"loop.mp4": "a symlink loop", "gone.mp4": "a broken link (its target does not exist)",
                                       "folder.mp4": "a folder"}  # fmt: skip
    assert report["ignored_files"] == {".hidden.mp4": "hidden (a name starting with '.')",
                                       "elsewhere/": "a link to a folder, not followed"}  # fmt: skip
    assert report["other_files"] == {".txt": 1} and report["usable"] == 1 and report["videos"] == 4
