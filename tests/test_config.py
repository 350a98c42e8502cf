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
