"""Resumable training checkpoints: everything a run needs to continue exactly where it stopped.

`out_dir/checkpoints/step_NNNNNNN/` holds
  model.safetensors      the trained weights (not the EMA)
  ema.safetensors        the EMA weights (what out_dir's exported model holds)
  optimizer.safetensors  AdamW's moment and step tensors, keyed "<param index>.<name>"
  optimizer.json         AdamW's param groups (lr, betas, ...)
  rng.safetensors        the data and noise generators, torch's CPU (and CUDA) generators
  state.json             step, recent losses, elapsed time, the data's bad-file list, format version
  train.yaml             the config the run was started with
No file is pickled. A checkpoint is written to a temporary folder and renamed into place, so a killed
run leaves either the whole checkpoint or none; the newest `keep` are kept. The learning-rate
schedule is a function of the step, so the step restores it; the generators' states are the data
position.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

from .config import Config, config_to_dict, drop_retired
from .errors import VinError
from .model.protocol import VideoModel
from .weights import read_safetensors

FORMAT = 1
TEMPORARY = ".tmp-"  # the prefix of a checkpoint folder being written (renamed into place when complete)
logger = logging.getLogger("vin.train")
FILES = ("model.safetensors", "ema.safetensors", "optimizer.safetensors", "optimizer.json", "rng.safetensors", "state.json", "train.yaml")
PREFIX = "step_"
# Settings that may change when a run is resumed: those that do not change what it computes, `steps`
# (to train on), and the optimisation knobs one turns down to recover from a diverged run. Any other
# difference (the model, the data, the seed, the batch) means the checkpoint is from another run.
RUN_KEYS = {
    "data": {"cache_dir", "workers"},
    "train": {"out_dir", "resume", "init_from", "stop_at", "save_every", "keep_checkpoints", "log_every", "sample_every",
              "sample_frames", "sample_steps", "device", "threads", "steps", "lr", "warmup_steps", "grad_clip",
              "min_lr_ratio"},
}  # fmt: skip


def checkpoints_dir(out_dir: Path) -> Path:
    return out_dir / "checkpoints"


def list_checkpoints(out_dir: Path) -> list[Path]:
    """Complete checkpoints in out_dir, oldest first."""
    root = checkpoints_dir(out_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def remove_unfinished(out_dir: Path) -> list[str]:
    """Removes the checkpoint folders a run killed while saving left half-written (checkpoints/.tmp-*, never
    renamed into place, so never resumed from); returns their names, each also logged as a warning."""
    root = checkpoints_dir(out_dir)
    found = sorted(p for p in root.iterdir() if p.name.startswith(TEMPORARY)) if root.is_dir() else []
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        logger.warning("removed %s, a checkpoint left half-written by a run that was killed while saving", path)
    return [p.name for p in found]


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_state(
    out_dir: Path,
    step: int,
    model: VideoModel,
    ema: VideoModel,
    optimizer: torch.optim.Optimizer,
    generators: dict[str, torch.Generator],
    config: Config,
    extra: dict[str, Any],
    keep: int,
) -> Path:
    """Writes checkpoints/step_NNNNNNN atomically, deletes all but the newest `keep`, returns its path."""
    root = checkpoints_dir(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:07d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=TEMPORARY))
    try:
        save_file(_cpu(model.trained_state_dict()), tmp / "model.safetensors")
        save_file(_cpu(ema.trained_state_dict()), tmp / "ema.safetensors")
        opt = optimizer.state_dict()
        tensors, scalars = {}, {}
        for index, entry in opt["state"].items():
            for name, value in entry.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{index}.{name}"] = value
                else:
                    scalars[f"{index}.{name}"] = value
        save_file(_cpu(tensors), tmp / "optimizer.safetensors")
        (tmp / "optimizer.json").write_text(json.dumps({"param_groups": opt["param_groups"], "scalars": scalars}))
        rng = {f"generator.{k}": g.get_state() for k, g in generators.items()}
        rng["torch.cpu"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                rng[f"torch.cuda.{i}"] = s
        save_file(rng, tmp / "rng.safetensors")
        (tmp / "state.json").write_text(json.dumps({"format": FORMAT, "step": step, **extra}, indent=1))
        with open(tmp / "train.yaml", "w") as fh:
            yaml.safe_dump(config_to_dict(config), fh, sort_keys=False)
        for file in tmp.iterdir():
            os.chmod(file, 0o644)
        os.chmod(tmp, 0o755)
        if final.exists():  # the same step saved again (a resumed run that stops where it started)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(out_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _differences(saved: dict, current: dict) -> list[str]:
    """What differs between a checkpoint's config and this run's. A setting added to vin after the checkpoint
    was written is missing from its train.yaml: at its default it computes what the checkpoint did."""
    out, defaults = [], config_to_dict(Config())
    for section in ("model", "data", "train"):
        a, b = drop_retired(section, saved.get(section, {}) or {}, "the checkpoint's train.yaml"), current.get(section, {})
        for key in sorted(set(a) | set(b)):
            if key in RUN_KEYS.get(section, ()) or (key not in a and b.get(key) == defaults[section].get(key, "<none>")):
                continue
            if a.get(key, "<missing>") != b.get(key, "<missing>"):
                out.append(f"{section}.{key}: {a.get(key, '<missing>')!r} in the checkpoint, {b.get(key, '<missing>')!r} now")
    return out


def check_state(path: Path, config: Config) -> dict[str, Any]:
    """Checks that `path` is a complete checkpoint of a run with this config; returns its state.json."""
    hint = "a resumable checkpoint is a folder out_dir/checkpoints/step_NNNNNNN written by `vin train`"
    if not path.is_dir():
        raise VinError(f"checkpoint {path} does not exist ({hint})")
    missing = [name for name in FILES if not (path / name).is_file()]
    if missing:
        raise VinError(f"checkpoint {path} is incomplete: no {', '.join(missing)}; resume from another "
                       f"(train.resume=<out_dir>/checkpoints/step_...) or start fresh ({hint})")  # fmt: skip
    try:
        state = json.loads((path / "state.json").read_text())
        saved = yaml.safe_load((path / "train.yaml").read_text()) or {}
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise VinError(f"checkpoint {path} has an unreadable state.json or train.yaml: {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(saved, dict):
        raise VinError(f"checkpoint {path}: state.json is not a vin training state of format {FORMAT}")
    diffs = _differences(saved, config_to_dict(config))
    if diffs:
        raise VinError(f"checkpoint {path} is from another config ({'; '.join(diffs[:4])}"
                       f"{'; ...' if len(diffs) > 4 else ''}); resume with the config it was trained with, "
                       "or start a fresh run in another train.out_dir")  # fmt: skip
    return state


def _load(path: Path, name: str) -> dict[str, torch.Tensor]:
    return read_safetensors(path / name, f"checkpoint {path}: {name}", "; resume from an older checkpoint")


def load_state(
    path: Path,
    config: Config,
    model: VideoModel,
    ema: VideoModel,
    optimizer: torch.optim.Optimizer,
    generators: dict[str, torch.Generator],
) -> dict[str, Any]:
    """Restores a run from `path` in place (weights, EMA, optimizer, generators); returns state.json."""
    state = check_state(path, config)
    try:
        model.load_trained_state_dict(_load(path, "model.safetensors"))
        ema.load_trained_state_dict(_load(path, "ema.safetensors"))
    except (RuntimeError, VinError) as err:
        raise VinError(f"checkpoint {path}: its weights do not fit this model ({str(err).splitlines()[0]})") from None
    tensors = _load(path, "optimizer.safetensors")
    try:
        meta = json.loads((path / "optimizer.json").read_text())
        entries: dict[int, dict[str, Any]] = {}
        for key, value in list(tensors.items()) + list(meta["scalars"].items()):
            index, name = key.split(".", 1)
            entries.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": entries, "param_groups": meta["param_groups"]})
    except (KeyError, ValueError, json.JSONDecodeError) as err:
        raise VinError(f"checkpoint {path}: the optimizer state does not fit this model ({err})") from None
    rng = _load(path, "rng.safetensors")
    for name, generator in generators.items():
        if f"generator.{name}" not in rng:
            raise VinError(f"checkpoint {path}: rng.safetensors has no state for the {name} generator")
        generator.set_state(rng[f"generator.{name}"])
    torch.set_rng_state(rng["torch.cpu"])
    cuda = [rng[k] for k in sorted(rng) if k.startswith("torch.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    return state
