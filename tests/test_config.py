from pathlib import Path

import pytest

from vin.config import Config, load_config, save_config
from vin.errors import VinError

ROOT = Path(__file__).resolve().parents[1]


def test_yaml_and_overrides():
    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["train.steps=7", "model.coupling=cross"])
    assert isinstance(cfg, Config)
    assert cfg.train.steps == 7 and cfg.model.coupling == "cross" and cfg.model.width == 32
    assert cfg.train.chunk_counts == [1, 2, 4]


def test_round_trip(tmp_path):
    cfg = load_config(ROOT / "configs" / "small.yaml")
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.stepz=3"], r"train\.stepz.*Did you mean"),
        (["model.width=wide"], r"model\.width"),
        (["steps"], "must look like section.key=value"),
        (["nosection.key=1"], "nosection"),
    ],
)
def test_bad_overrides(overrides, message):
    with pytest.raises(VinError, match=message):
        load_config(None, overrides)


def test_bad_files(tmp_path):
    with pytest.raises(VinError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(VinError, match="not valid YAML"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("model:\n  widht: 3\n")
    with pytest.raises(VinError, match="widht"):
        load_config(unknown)


def test_retired_model_options_pass_at_their_old_value_and_fail_otherwise(tmp_path):
    from vin.config import load_config

    config = tmp_path / "old.yaml"
    config.write_text("model:\n  registers: 0\n  vin_latent_std: 0.02\n  width: 64\n")
    assert load_config(config).model.width == 64
    with pytest.raises(VinError, match=r"model.read_locality='spatial' is an option that was retired"):
        load_config(config, ["model.read_locality=spatial"])


def test_the_model_is_built_from_model_config_and_saves_every_setting(tmp_path):
    """ModelConfig is the one declaration: VINModel(config) == VINModel(**settings), config.json holds every field."""
    import json
    from dataclasses import asdict, fields

    import torch

    from vin.config import ModelConfig
    from vin.model.vin import VINModel

    config = ModelConfig(sample_size=16, width=32, depth=2, heads=2, vin_tokens=8, chunk_frames=4, context_frames=2)
    torch.manual_seed(0)
    a = VINModel(config)
    torch.manual_seed(0)
    b = VINModel(**asdict(config))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    a.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert {f.name: saved[f.name] for f in fields(ModelConfig)} == asdict(config)
    with pytest.raises(TypeError, match="not both"):
        VINModel(config, width=64)
    with pytest.raises(TypeError):
        VINModel(widht=64)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"heads": 3}, r"model.heads=3 must divide model.width=128 \(e.g. heads=4\)"),
        ({"width": 0}, "model.width must be a whole number of at least 1, got 0"),
        ({"vin_tokens": -1}, "model.vin_tokens must be a whole number of at least 0, got -1"),
        ({"mlp_ratio": 0}, "model.mlp_ratio must be positive"),
        ({"attention": "2d"}, "model.attention must be one of 3d, factorised, got '2d'"),
        ({"sample_size": 30}, "model.sample_size=30 must be a multiple of model.patch_hw=4"),
        ({"context_frames": 3}, "context_frames=3 must be a multiple of 2"),
    ],
)
def test_model_config_check_is_the_one_place_settings_are_validated(settings, message):
    from vin.config import ModelConfig
    from vin.model.vin import VINModel

    with pytest.raises(VinError, match=message):
        ModelConfig(**settings).check()
    with pytest.raises(VinError, match=message):  # the model runs the same check
        VINModel(**settings)
    with pytest.raises(VinError, match=message):  # and so does loading a config
        load_config(None, [f"model.{k}={v}" for k, v in settings.items()])


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=-1", r"train.lr must be a number in \[0, inf\), got -1.0"),
        ("train.timestep_sampling=bogus", "train.timestep_sampling must be one of logit_normal, uniform"),
        ("train.lr_schedule=linear", "train.lr_schedule must be one of constant, cosine"),
        ("train.logit_std=0", r"train.logit_std must be a number in \(0, inf\), got 0.0"),
        ("train.context_loss=1", r"train.context_loss=1 is an option that was retired"),
        ("train.context_dropout=0.5", r"train.context_dropout=0.5 is an option that was retired"),
        ("train.save_every=0", "train.save_every must be a whole number of at least 1, got 0"),
        ("train.grad_clip=.inf", r"train.grad_clip must be a number in \[0, inf\), got inf"),
        ("train.init_prob=1.5", r"train.init_prob must be a number in \[0, 1\], got 1.5"),
    ],
)
def test_train_config_values_are_checked_where_they_enter(override, message):
    with pytest.raises(VinError, match=message):
        load_config(None, [override])
