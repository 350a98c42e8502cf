"""train.init_from: a fresh run (new optimizer) starting from an exported model's weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vin.config import load_config
from vin.errors import VinError
from vin.checkpoint import WEIGHTS_NAME, default_checkpoint, load_model
from vin.train import build_model, check_init_from, load_init_weights, train

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"
SMALL = ROOT / "configs" / "small.yaml"
FAST = ["train.steps=1", "train.windows_per_step=1", "train.chunk_counts=[1]", "train.threads=1"]


def test_the_shipped_model_loads_into_the_small_config():
    config = load_config(SMALL, ["train.init_from=default"])
    assert check_init_from(config) == default_checkpoint()
    model = build_model(config)
    load_init_weights(model, config)
    shipped = load_file(default_checkpoint() / WEIGHTS_NAME)
    state = model.state_dict()
    assert state.keys() == shipped.keys()
    assert all(torch.equal(state[k], shipped[k]) for k in shipped)


def test_a_fine_tune_may_train_with_another_context_than_the_folder_samples_with():
    config = load_config(SMALL, ["train.init_from=default", "model.context_frames=2"])
    assert load_model().config.context_frames == 8 and config.model.context_frames == 2
    assert check_init_from(config) == default_checkpoint()
    with pytest.raises(VinError, match=r"model.chunk_frames: 8 here, 16 there"):  # the chunk is not free
        check_init_from(load_config(SMALL, ["train.init_from=default", "model.chunk_frames=8"]))


def test_a_run_starts_from_the_folders_weights_and_its_ema_too(tmp_path):
    first = tmp_path / "first"
    train(load_config(TINY, [*FAST, f"train.out_dir={first}"]), progress=False)
    second = tmp_path / "second"  # lr 0: the optimizer step and the EMA keep the loaded weights exactly
    train(load_config(TINY, [*FAST, f"train.out_dir={second}", f"train.init_from={first}", "train.lr=0"]), progress=False)
    a, b = load_file(first / WEIGHTS_NAME), load_file(second / WEIGHTS_NAME)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ckpt = sorted((second / "checkpoints").iterdir())[-1]
    model = load_file(ckpt / "model.safetensors")
    assert all(torch.equal(a[k], model[k]) for k in a)
    fresh = build_model(load_config(TINY)).state_dict()
    assert not all(torch.equal(fresh[k], b[k]) for k in a)  # not a fresh initialisation
    assert json.loads((second / "summary.json").read_text())["resumed_from"] is None  # a new run, step 1


def test_a_different_model_config_is_refused_with_the_differences(tmp_path):
    with pytest.raises(VinError, match=r"a different model than this run's config: model.width: 64 here, 128 there; "
                                       r"model.depth: 3 here, 6 there"):  # fmt: skip
        train(load_config(SMALL, ["train.init_from=default", "model.depth=3", "model.width=64",
                                  f"train.out_dir={tmp_path / 'o'}"]), progress=False)  # fmt: skip
    assert not (tmp_path / "o").exists()  # refused before any work
    with pytest.raises(VinError, match=r"train.init_from: checkpoint .*nothing does not exist"):
        train(load_config(TINY, [f"train.init_from={tmp_path / 'nothing'}", f"train.out_dir={tmp_path / 'o'}"]), progress=False)
    assert load_model().config.depth == 6  # the shipped model is untouched


def test_sigterm_saves_a_resumable_checkpoint_and_exits_cleanly(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    overrides = [*FAST[1:], "train.steps=100000", "train.save_every=100000", "train.log_every=1", "train.warmup_steps=2"]
    proc = subprocess.Popen([sys.executable, "-m", "vin", "train", str(TINY), *overrides, f"train.out_dir={out}", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not ((out / "log.jsonl").is_file() and (out / "log.jsonl").read_text().count("\n") >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    step = summary["steps"]
    assert summary["stopped_by"] == "SIGTERM" and 2 <= step < 100000
    assert f"stopped by SIGTERM at step {step}" in stdout and "train.resume=auto" in stdout
    assert (out / "checkpoints" / f"step_{step:07d}").is_dir()
    # resumed for 2 more steps, it ends where an uninterrupted run of step + 2 steps ends, bit for bit
    train(load_config(TINY, [*FAST[1:], f"train.steps={step + 2}", f"train.out_dir={out}", "train.resume=auto",
                             "train.save_every=100000", "train.log_every=1", "train.warmup_steps=2"]), progress=False)  # fmt: skip
    ref = tmp_path / "ref"
    train(load_config(TINY, [*FAST[1:], f"train.steps={step + 2}", f"train.out_dir={ref}", "train.save_every=100000",
                             "train.log_every=1", "train.warmup_steps=2"]), progress=False)  # fmt: skip
    a, b = load_file(out / WEIGHTS_NAME), load_file(ref / WEIGHTS_NAME)
    assert all(torch.equal(a[k], b[k]) for k in a)
