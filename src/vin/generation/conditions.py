"""A condition per chunk (prompt travel): prompts or prompt embeddings given once, once per chunk, or as a
schedule {first chunk: prompt}; and the prompt files of `vin generate --prompt-file`.

A schedule is expanded once the request's chunk count is known (`per_chunk`); equal neighbours become one
span (`vin.diffusion.sampling.ChunkConditions`), which a strategy runs as one pass over its windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import torch

from ..diffusion.sampling import ChunkConditions
from ..errors import VinError

MAX_PROMPT_FILE_BYTES = 1 << 20


def is_schedule(value: Any) -> bool:
    """A value given per chunk: a list / tuple (one per chunk) or a mapping {first chunk: value}."""
    return isinstance(value, Mapping) or (isinstance(value, Sequence) and not isinstance(value, str))


def count(value: Any) -> int:
    """How many per-chunk conditions a list gives (1 for a single value or a schedule: a schedule fits any count)."""
    return len(value) if is_schedule(value) and not isinstance(value, Mapping) else 1


def per_chunk(value: Any, chunks: int, what: str) -> list | None:
    """One value per chunk from a list of `chunks` values or a schedule {first chunk: value} starting at chunk 0;
    None for a value given once (the video's)."""
    if not is_schedule(value):
        return None
    if not isinstance(value, Mapping):
        values = list(value)
        if not values:
            raise VinError(f"{what}: the list is empty; give one, or one per chunk")
        return values if len(values) > 1 else None
    starts = sorted(value)
    if not starts or any(isinstance(s, bool) or not isinstance(s, int) for s in starts):
        raise VinError(f"{what}: a schedule maps first chunks (whole numbers) to prompts, got keys {starts!r}")
    if starts[0] != 0 or starts[-1] >= chunks:
        raise VinError(f"{what}: a schedule starts at chunk 0 and its chunks are in [0, {chunks - 1}] ({chunks} chunks), "
                       f"got {starts[0]}..{starts[-1]}")  # fmt: skip
    values = [value[max(s for s in starts if s <= i)] for i in range(chunks)]
    return values if len(starts) > 1 else None


def chunk_conditions(values: list, encode: Callable[[Any], torch.Tensor]) -> ChunkConditions:
    """Per-chunk values -> `ChunkConditions`, each distinct value encoded once (`encode(value)` -> (B, ...));
    prompts are the same when equal, embeddings when they are the same tensor."""
    distinct: list[tuple[Any, torch.Tensor]] = []
    encoded = []
    for v in values:
        match = next((e for u, e in distinct if (u is v if isinstance(v, torch.Tensor) else u == v)), None)
        if match is None:
            match = encode(v)
            distinct.append((v, match))
        encoded.append(match)
    return ChunkConditions.of(encoded)


def read_prompt_file(path: str | Path) -> dict[int, str]:
    """A prompt travel schedule: one `CHUNK: prompt` per line (the chunk it starts at; blank lines and `#` comments
    skipped), chunks rising from 0. Returns {first chunk: prompt}."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise VinError(f"--prompt-file {str(path)!r} does not exist; give a text file of `CHUNK: prompt` lines")
    if path.stat().st_size > MAX_PROMPT_FILE_BYTES:
        raise VinError(f"--prompt-file {str(path)!r} is larger than 1 MiB; a prompt schedule is a few lines")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise VinError(f"--prompt-file {str(path)!r} is not UTF-8 text") from None
    schedule: dict[int, str] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        head, sep, prompt = line.partition(":")
        if not sep or not head.strip().isdigit() or not prompt.strip():
            raise VinError(f"--prompt-file {str(path)!r} line {number}: expected `CHUNK: prompt` (e.g. `4: a red car`), got {line[:60]!r}")
        start = int(head)
        if schedule and start <= max(schedule):
            raise VinError(f"--prompt-file {str(path)!r} line {number}: chunk {start} does not come after chunk {max(schedule)}")
        schedule[start] = prompt.strip()
    if not schedule:
        raise VinError(f"--prompt-file {str(path)!r} holds no `CHUNK: prompt` line")
    return schedule
