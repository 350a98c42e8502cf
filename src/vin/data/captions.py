"""Text captions for training, encoded once by the backbone's own text encoder into an on-disk cache.

`data.captions` may be a text file: JSON lines (`{"path": "clips/a.mp4", "caption": "a red kite ..."}`) or a
CSV with the columns `path` and `caption`, paths relative to `data.root`. Every distinct caption (and the empty
prompt, which dropped and uncaptioned videos train with) is encoded once into `<cache>/<sha256>.npy`: its real
tokens' states (n, D) in float16, keyed by the caption's text and the encoder's folder, so a restart reuses
them and a changed caption is encoded again. A batch reads its captions from disk (memory-mapped) and pads
them with zeros to `length` tokens, as Wan's pipeline pads its prompts: the table is never held in memory.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import VinError

TEXT_SUFFIXES = (".jsonl", ".csv")
ENCODE_BATCH = 8  # captions per text-encoder call


def is_text_captions(path: str) -> bool:
    return Path(path).suffix.lower() in TEXT_SUFFIXES


def read_caption_file(path: str | Path) -> dict[str, str]:
    """{video path relative to data.root: caption} from a .jsonl or .csv file; a bad line is one error naming it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise VinError(f"data.captions={str(path)!r} does not exist")
    rows: list[tuple[int, object]] = []
    with open(path, newline="", encoding="utf-8") as fh:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"path", "caption"} <= set(reader.fieldnames):
                raise VinError(f"data.captions={path.name}: a CSV of captions needs the columns path and caption, got {reader.fieldnames}")
            rows = [(i + 2, row) for i, row in enumerate(reader)]
        else:
            for i, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append((i, json.loads(line)))
                    except json.JSONDecodeError as err:
                        raise VinError(f"data.captions={path.name}, line {i}: not JSON ({err.msg})") from None
    table: dict[str, str] = {}
    for line, row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("path"), str) or not isinstance(row.get("caption"), str):
            raise VinError(f"data.captions={path.name}, line {line}: give a path and a caption as text, got {row!r:.80}")
        name = Path(row["path"]).as_posix()
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise VinError(f"data.captions={path.name}, line {line}: {row['path']!r} is not a path under data.root; give it relative to data.root")
        table[name] = row["caption"]
    return table


class CaptionCache:
    """Encoded captions on disk, one `<key>.npy` per caption: `key` = sha256 of the encoder's id and the text."""

    def __init__(self, folder: Path, encoder_id: str) -> None:
        self.folder, self.encoder_id = folder, encoder_id

    def path(self, text: str) -> Path:
        key = hashlib.sha256("\n".join((self.encoder_id, text)).encode()).hexdigest()
        return self.folder / f"{key}.npy"

    def missing(self, texts: list[str]) -> list[str]:
        return sorted({t for t in texts if not self.path(t).is_file()})

    def fill(self, texts: list[str], encode: Callable[[list[str]], torch.Tensor]) -> int:
        """Encodes and writes (atomically) the captions not cached yet; returns how many were encoded."""
        todo = self.missing(texts)
        self.folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(todo), ENCODE_BATCH):
            batch = todo[start : start + ENCODE_BATCH]
            states = encode(batch).float().cpu()  # (B, L, D): the real tokens, then zeros
            for text, state in zip(batch, states):
                if not torch.isfinite(state).all():
                    raise VinError(f"the text encoder gave NaN or Inf for the caption {text[:60]!r}; encode in float32")
                real = int((state.abs().sum(-1) > 0).nonzero().max()) + 1 if state.abs().sum() > 0 else 0
                target = self.path(text)
                tmp = target.with_suffix(f".tmp-{os.getpid()}.npy")
                np.save(tmp, state[:real].numpy().astype(np.float16))
                os.replace(tmp, target)
        return len(todo)

    def load(self, text: str, length: int) -> torch.Tensor:
        """(length, D): the caption's token states read from disk (memory-mapped), zero-padded."""
        states = np.load(self.path(text), mmap_mode="r")
        out = torch.zeros(length, states.shape[1])
        out[: min(length, len(states))] = torch.from_numpy(np.asarray(states[:length], dtype=np.float32))
        return out
