import json

import pytest
import torch

from vin.errors import VinError
from vin.checkpoint import load_model

from .conftest import tiny_model


def test_save_pretrained_from_pretrained_gives_identical_outputs(tmp_path):
    model = tiny_model(coupling="cross", num_classes=3)
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    loaded = load_model(tmp_path)
    x, t = torch.randn(1, 3, 8, 16, 16), torch.tensor([250.0])
    with torch.no_grad():
        assert torch.equal(model(x, t, torch.tensor([2])), loaded(x, t, torch.tensor([2])))
    assert loaded.config.coupling == "cross" and not loaded.training


def test_bad_checkpoints_fail_clearly(tmp_path):
    with pytest.raises(VinError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(VinError, match="has no config.json"):
        load_model(tmp_path)
    tiny_model().save_pretrained(tmp_path)
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.raises(VinError, match="could not be loaded"):
        load_model(tmp_path)
    weights.write_bytes(b"not a safetensors file at all")
    with pytest.raises(VinError, match="could not be loaded"):
        load_model(tmp_path)
    # weights from another shape of model
    tiny_model(width=64).save_pretrained(tmp_path / "other")
    (tmp_path / "other" / "diffusion_pytorch_model.safetensors").replace(weights)
    with pytest.raises(VinError, match="could not be loaded"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{ not json")
    with pytest.raises(VinError, match="not valid JSON"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(VinError, match="not VINModel"):
        load_model(tmp_path)


def test_checkpoint_names_and_paths(tmp_path):
    from vin.checkpoint import checkpoint_path, default_checkpoint

    assert checkpoint_path(None) == default_checkpoint() == checkpoint_path("default")
    assert checkpoint_path("full") == default_checkpoint("full") and checkpoint_path("full").name == "full"
    assert checkpoint_path(tmp_path / "mine") == tmp_path / "mine"
    with pytest.raises(VinError, match="no shipped checkpoint named 'best'"):
        default_checkpoint("best")


def test_a_config_that_does_not_match_its_weights_is_refused(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    for change, message in (({"depth": 3}, r"no tensor 'blocks.2"), ({"num_classes": 5}, r"no tensor 'y_embedder"),
                            ({"depth": 1}, r"an unexpected tensor 'blocks.1"), ({"width": 64}, r"is \(32,\), the config makes \(64,\)"),
                            ({"mystery": 1}, r"settings this version of vin does not know \(mystery\)")):  # fmt: skip
        (tmp_path / "config.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(VinError, match=message):
            load_model(tmp_path)


def test_retired_options_load_at_their_old_value_and_are_refused_otherwise(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**meta, "registers": 0, "read_locality": "none"}))
    x, t = torch.randn(1, 3, 8, 16, 16), torch.tensor([250.0])
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path)(x, t), model(x, t))
    (tmp_path / "config.json").write_text(json.dumps({**meta, "registers": 4}))
    with pytest.raises(VinError, match=r"model.registers=4 is an option that was retired"):
        load_model(tmp_path)
