"""The pairwise user study's videos: one folder of mp4s, one per (strategy, seed), and how trials are drawn.

Every video of a study has the same checkpoint, length and steps (recorded in the folder's study.json,
with a digest of the weights: a folder made with another model or other settings is refused, never
mixed). Strategies and seeds may be added later. `prepare` makes every missing video, so raters never
wait; a video the page needs and does not find is made then and kept for the next rater.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import VinError
from ..files import atomic_write_bytes
from ..generation.options import MAX_STEPS, STRATEGIES

MANIFEST = "study.json"
SCHEMA = "vin.study/1"


@dataclass(frozen=True)
class Trial:
    """One pair shown to a rater: the same seed and length, two strategies, sides drawn at random."""

    left: str
    right: str
    seed: int


def weights_digest(checkpoint: Path) -> str:
    """SHA-256 of a checkpoint's weights file (which model made a study's videos)."""
    from ..checkpoint import WEIGHTS_NAME

    digest = hashlib.sha256()
    with open(Path(checkpoint) / WEIGHTS_NAME, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Study:
    """A study folder: strategies x seeds videos of `frames` frames and `steps` steps from one checkpoint."""

    def __init__(self, folder: str | Path, checkpoint: Path, frames: int, steps: int, strategies: Sequence[str],
                 seeds: Sequence[int], fps: int = 16, upscale: int = 8, max_steps: int = MAX_STEPS) -> None:  # fmt: skip
        """`max_steps`: the bound on `steps` (vin demo --max-steps, the bound of the page's requests too)."""
        self.folder, self.checkpoint = Path(folder).expanduser(), Path(checkpoint)
        self.frames, self.steps, self.fps, self.upscale, self.max_steps = frames, steps, fps, upscale, max_steps
        self.strategies, self.seeds = tuple(strategies), tuple(seeds)
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise VinError(f"study strategy {unknown[0]!r} is not one of {', '.join(STRATEGIES)}")
        if len(set(self.strategies)) != len(self.strategies) or len(self.strategies) < 2:
            raise VinError(f"a study compares at least two different strategies, got {','.join(self.strategies)!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise VinError(f"a study needs at least one seed, each once, got {','.join(map(str, self.seeds))!r}")

    def open(self, model) -> Study:
        """Checks every request against `model` (before any work), then creates or checks the folder."""
        from ..generation.api import check_request
        from ..generation.options import make_options

        options = [make_options(self.frames, self.steps, seed, max_steps=self.max_steps) for seed in self.seeds]
        for strategy in self.strategies:
            check_request(model, strategy, options[0])
        if self.folder.exists() and not self.folder.is_dir():
            raise VinError(f"study folder {self.folder} is a file; give a folder")
        if not self.folder.parent.is_dir():
            raise VinError(f"study folder {self.folder}: {self.folder.parent} does not exist; create it first")
        # the folder's name only (it may be served with the videos); the weights' digest is what identifies the model
        manifest = {"schema": SCHEMA, "checkpoint": self.checkpoint.name, "weights_sha256": weights_digest(self.checkpoint),
                    "frames": self.frames, "steps": self.steps, "fps": self.fps, "upscale": self.upscale}  # fmt: skip
        path = self.folder / MANIFEST
        if path.is_file():
            try:
                found = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise VinError(f"{path} is not valid JSON; remove it or give another --study folder") from None
            for key in ("weights_sha256", "frames", "steps", "fps", "upscale"):
                if found.get(key) != manifest[key]:
                    what = "another checkpoint" if key == "weights_sha256" else f"{key} {found.get(key)}"
                    raise VinError(f"study folder {self.folder} holds videos made with {what}, not this request's "
                                   f"({key} {manifest[key]}); give another --study folder")  # fmt: skip
        else:
            self.folder.mkdir(exist_ok=True)
            atomic_write_bytes(path, (json.dumps(manifest, indent=2) + "\n").encode())
        return self

    def same(self, vote) -> bool:
        """Whether `vote` (a `votes.Vote`) was cast on this study's videos (checkpoint, length and steps)."""
        return (vote.checkpoint, vote.frames, vote.steps) == (str(self.checkpoint), self.frames, self.steps)

    def path(self, strategy: str, seed: int) -> Path:
        return self.folder / f"{strategy}-{self.frames}f-seed{seed}.mp4"

    def missing(self) -> list[tuple[str, int]]:
        """(strategy, seed) of the videos not made yet."""
        return [(s, seed) for seed in self.seeds for s in self.strategies if not self.path(s, seed).is_file()]

    def ensure(self, model, strategy: str, seed: int) -> Path:
        """The video of (strategy, seed), generated and written now if the folder lacks it."""
        path = self.path(strategy, seed)
        if not path.is_file():
            from ..generation.api import generate
            from ..videos import write_video

            result = generate(model, self.frames, self.steps, seed, strategy, progress=True, max_steps=self.max_steps)
            write_video(result.video.numpy(), path, fps=self.fps, upscale=self.upscale)
        return path

    def prepare(self, model, echo: Callable[[str], None] = print) -> int:
        """Makes every missing video; returns how many it made."""
        todo = self.missing()
        for i, (strategy, seed) in enumerate(todo, 1):
            echo(f"[{i}/{len(todo)}] {strategy}, seed {seed}: {self.path(strategy, seed)}")
            self.ensure(model, strategy, seed)
        return len(todo)

    def draw(self, rng: random.Random, counts: Counter | None = None, done: set | frozenset = frozenset()) -> Trial:
        """A trial: a pair among those with the fewest votes so far (`counts` of sorted pairs), a seed, sides at random.
        `done`: the (sorted pair, seed) a rater has voted on already, never drawn again for them."""
        pairs = [tuple(sorted(p)) for p in itertools.combinations(self.strategies, 2)]
        seeds = {p: [seed for seed in self.seeds if (p, seed) not in done] for p in pairs}
        pairs = [p for p in pairs if seeds[p]]
        if not pairs:
            raise VinError("you have voted on every pair of this study: thank you")
        counts = counts or Counter()
        fewest = min(counts.get(p, 0) for p in pairs)
        a, b = rng.choice([p for p in pairs if counts.get(p, 0) == fewest])
        left, right = (a, b) if rng.random() < 0.5 else (b, a)
        return Trial(left, right, rng.choice(seeds[a, b]))
