"""Atomic file writes: a reader never sees a half-written file, and a failure or signal leaves none behind.

A leaf module (no torch, no datasets, no models): data, metrics, training and the CLI all write through it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import VinError


def check_writable(path: str | Path, hint: str = "give a file name") -> Path:
    """Fails before any work if `path` cannot be written: its folder must exist and it must not be a folder."""
    path = Path(path)
    if not path.parent.is_dir():
        raise VinError(f"output folder {path.parent} does not exist; create it first (mkdir -p {path.parent})")
    if path.is_dir():
        raise VinError(f"output {path} is a directory; {hint}")
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[str]:
    """A temporary file name next to `path`; on leaving the block without error the file is renamed to `path`.

    Writers fill the temporary file; a failure anywhere (an exception, Ctrl-C, or SIGTERM under the CLI,
    which turns it into an exception) removes it, so no half-written output is left.
    The file gets the permissions of any other new file (mkstemp would leave 0600).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes `data` to `path` atomically (see `atomic_path`), after checking the folder."""
    path = check_writable(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path
