"""An on-disk cache of decoded (or encoded) videos, one .npy shard per video, read memory-mapped.

A shard's name is a hash of the video's path, size and modification time and of everything that
shaped the array (frame size, autoencoder), so an edited video or a changed setting never reads a
stale shard. Shards are written to a temporary file and renamed: a killed run leaves no half shard,
and several processes (DDP ranks) may fill the same cache.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..files import atomic_path, atomic_write_bytes


def file_key(path: Path, variant: str) -> str:
    """A name for `path` as it is now (size, mtime) under the setting `variant`."""
    st = path.stat()
    text = json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, variant])
    return hashlib.sha1(text.encode()).hexdigest()


class ShardCache:
    """Arrays by key under `root/<key[:2]>/<key>.npy`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached array (memory-mapped, read-only) or None."""
        path = self._path(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError):  # a damaged shard: decode again and overwrite it
            self.misses += 1
            return None
        self.hits += 1
        return array

    def put(self, key: str, array: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())
