"""What a visitor of the demo page may ask for and may see: the caps on one request, the checkpoints it may
pick (by name, never by path), the rate of votes, and error lines without the server's paths.

Whoever serves the page sets the caps (`vin demo --max-frames/--max-steps/--max-strategies`); the page
shows them. No torch and no gradio here.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import VinError


@dataclass(frozen=True)
class Caps:
    """The most one request of the page may ask for: the time and memory one visitor can take from the others."""

    frames: int = 1024
    steps: int = 100
    strategies: int = 3

    def check(self) -> Caps:
        """Each cap a whole number of at least 1 (the flags that set them are named in the error)."""
        for flag, value in (("--max-frames", self.frames), ("--max-steps", self.steps), ("--max-strategies", self.strategies)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise VinError(f"{flag} must be a whole number of at least 1, got {value!r}")
        return self

    def describe(self) -> str:
        """The caps in words, as the page shows them."""
        return (f"at most {self.frames} frames, {self.steps} steps and {self.strategies} "
                f"strateg{'y' if self.strategies == 1 else 'ies'} per request")  # fmt: skip

    def refuse(self, frames, steps, strategies: int) -> None:
        """One line when a request asks for more than a cap (values that are not numbers are left to the
        request's own checks, which give the CLI's line)."""
        asked = (("strategies", strategies, self.strategies, "--max-strategies"), ("frames", frames, self.frames, "--max-frames"),
                 ("steps", steps, self.steps, "--max-steps"))  # fmt: skip
        for what, value, cap, flag in asked:
            if isinstance(value, int) and value > cap:
                raise VinError(f"{value} {what} is more than this page takes: {self.describe()} (set by whoever serves "
                               f"it: vin demo {flag}); ask for fewer")  # fmt: skip


def checkpoint_names(paths: Sequence[Path]) -> dict[str, Path]:
    """A short, unique name per checkpoint folder, as the page lists it: the folder's name, or as many of its
    last path parts as tell it from the others (runs/a/final, runs/b/final -> a/final, b/final). A folder
    given twice is listed once. Names only: the page never shows where a folder is."""
    unique = list(dict.fromkeys(Path(p).resolve() for p in paths))
    depth = {p: 1 for p in unique}
    while True:
        names = {p: "/".join(p.parts[-depth[p] :]) for p in unique}
        clashing = {p for p in unique if list(names.values()).count(names[p]) > 1 and depth[p] < len(p.parts) - 1}
        if not clashing:
            return {names[p]: p for p in unique}
        for p in clashing:
            depth[p] += 1


def public(text: str, known: Iterable[tuple[Path, str]] = ()) -> str:
    """`text` (an error line for the page) without the server's paths: each known folder or file replaced by its
    public name, then any other absolute path cut to its last part."""
    for path, name in sorted(known, key=lambda item: -len(str(item[0]))):  # the longest first: a file inside a folder
        text = text.replace(str(path), name)
    return re.sub(r"(?<![\w.~])/(?:[^\s'\"/]+/)+([^\s'\"/]*)", r"\1", text)


class VoteLimit:
    """At most `per_minute` votes a minute from one client address. A rater id is whatever a browser session
    draws, so a script can be any number of raters; it cannot be any number of addresses."""

    def __init__(self, per_minute: int) -> None:
        if isinstance(per_minute, bool) or not isinstance(per_minute, int) or per_minute < 1:
            raise VinError(f"--votes-per-minute must be a whole number of at least 1, got {per_minute!r}")
        self.per_minute = per_minute
        self._cast: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def check(self, address: str, now: float | None = None) -> None:
        """Raises a one-line VinError when `address` has cast `per_minute` votes in the last minute."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._cast.get(address, []) if now - t < 60]
            self._cast[address] = recent
            if len(recent) >= self.per_minute:
                wait = 60 - (now - recent[0])
                raise VinError(f"too many votes from your address: at most {self.per_minute} a minute; vote again in "
                               f"{wait:.0f} s")  # fmt: skip

    def count(self, address: str, now: float | None = None) -> None:
        """Counts a vote just recorded from `address`."""
        with self._lock:
            self._cast.setdefault(address, []).append(time.monotonic() if now is None else now)
