"""The user study's votes, in SQLite, and their tally.

One row per vote, committed before `record` returns (rollback journal, `synchronous=FULL`: the row is on
disk when the rater's page hears back), so a crash or a restart loses no vote. A vote is one rater's
answer to one pair of videos: which is more consistent over time, which has the better quality (each
`left`, `right` or `none`, no preference). A rater votes once on a pair (two strategies, one seed, one
study): a second vote is refused, so no one can stuff a pair. The table keeps what was shown where, so
position bias can be measured later; the tally works on strategies and says how many raters it holds.
No torch and no gradio here.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import VinError

CHOICES = ("left", "right", "none")
CRITERIA = ("consistency", "quality")
QUESTIONS = {
    "consistency": "Which video is more consistent over time?",
    "quality": "Which video has the better quality?",
}
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval

SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cast_at TEXT NOT NULL,
    rater TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    frames INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    left_strategy TEXT NOT NULL,
    right_strategy TEXT NOT NULL,
    consistency TEXT NOT NULL CHECK (consistency IN ('left', 'right', 'none')),
    quality TEXT NOT NULL CHECK (quality IN ('left', 'right', 'none'))
)
"""
COLUMNS = ("id", "cast_at", "rater", "checkpoint", "frames", "steps", "seed", "left_strategy", "right_strategy",
           "consistency", "quality")  # fmt: skip


@dataclass(frozen=True)
class Vote:
    """One rater's answers about one pair of videos (same checkpoint, length, steps and seed)."""

    rater: str
    checkpoint: str
    frames: int
    steps: int
    seed: int
    left: str  # the strategy shown on the left
    right: str
    consistency: str  # left | right | none
    quality: str

    def check(self) -> Vote:
        """Raises a one-line VinError when an answer is missing or the pair is not two strategies."""
        for criterion in CRITERIA:
            answer = getattr(self, criterion)
            if answer not in CHOICES:
                raise VinError(f"answer both questions before voting ({QUESTIONS[criterion].lower().rstrip('?')}: "
                               f"left, right or no preference)")  # fmt: skip
        if not self.left or not self.right or self.left == self.right:
            raise VinError(f"a vote compares two different strategies, got {self.left!r} and {self.right!r}")
        return self

    def winner(self, criterion: str) -> str | None:
        """The strategy preferred on `criterion`, or None for no preference."""
        answer = getattr(self, criterion)
        return None if answer == "none" else self.left if answer == "left" else self.right


class VoteStore:
    """A SQLite file of votes: created if missing, checked when opened, one committed row per vote."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.parent.is_dir():
            raise VinError(f"votes file {self.path}: folder {self.path.parent} does not exist; create it first")
        if self.path.is_dir():
            raise VinError(
                f"votes file {self.path} is a directory; give a file name such as {self.path / 'votes.sqlite'}"
            )
        self._lock = threading.Lock()
        with self._session() as db:
            db.execute(SCHEMA)
            columns = tuple(row[1] for row in db.execute("PRAGMA table_info(votes)"))
        if columns != COLUMNS:
            raise VinError(f"votes file {self.path} has a 'votes' table that vin did not write (columns "
                           f"{', '.join(columns)}); give another --votes file")  # fmt: skip

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own (any thread may vote), one transaction committed on leaving, then closed."""
        with self._lock:
            db = sqlite3.connect(self.path, timeout=30)
            try:
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA journal_mode=DELETE")
                with db:
                    yield db
            except sqlite3.DatabaseError as err:
                hint = (
                    "; give a new file name, or the votes file of an earlier study"
                    if "not a database" in str(err)
                    else ""
                )
                raise VinError(f"votes file {self.path}: {err}{hint}") from None
            finally:
                db.close()

    def record(self, vote: Vote) -> int:
        """Stores `vote` and commits it to disk before returning its row id; a rater's second vote on the same pair
        (the same two strategies, either side, the same seed and study) is refused, in the same transaction."""
        vote.check()
        cast_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        with self._session() as db:
            earlier = db.execute("SELECT id FROM votes WHERE rater = ? AND checkpoint = ? AND frames = ? AND steps = ? AND "
                                 "seed = ? AND ((left_strategy = ? AND right_strategy = ?) OR (left_strategy = ? AND "
                                 "right_strategy = ?))", (vote.rater, vote.checkpoint, vote.frames, vote.steps, vote.seed,
                                                          vote.left, vote.right, vote.right, vote.left)).fetchone()  # fmt: skip
            if earlier is not None:
                raise VinError(f"you have already voted on this pair (vote {earlier[0]}): one vote per rater and pair; "
                               "press 'Next pair' for another")  # fmt: skip
            cursor = db.execute(f"INSERT INTO votes ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * 10)})",
                                (cast_at, *astuple(vote)))  # fmt: skip
        return int(cursor.lastrowid)

    def votes(self) -> list[Vote]:
        """Every vote, in the order cast."""
        with self._session() as db:
            rows = db.execute(f"SELECT {', '.join(COLUMNS[2:])} FROM votes ORDER BY id").fetchall()
        return [Vote(*row) for row in rows]


def wilson_interval(wins: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a binomial proportion (95% by default); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PairTally:
    """The votes on one pair of strategies (a, b) for one question."""

    a: str
    b: str
    criterion: str
    votes: int
    a_wins: int
    b_wins: int
    ties: int  # no preference
    raters: int = 0  # how many different raters cast the votes

    @property
    def win_rate(self) -> float | None:
        """a's share of the votes that prefer one of the two (ties left out); None without any."""
        decided = self.a_wins + self.b_wins
        return self.a_wins / decided if decided else None

    @property
    def interval(self) -> tuple[float, float]:
        """95% Wilson interval of `win_rate`."""
        return wilson_interval(self.a_wins, self.a_wins + self.b_wins)


def tally(votes: Sequence[Vote], order: Sequence[str] = ()) -> list[PairTally]:
    """Win counts per unordered pair of strategies and question, whichever side each video was shown on.

    Within a pair, `a` is the strategy that comes first in `order` (then alphabetically); rows are sorted
    by pair, then question.
    """
    rank = {name: i for i, name in enumerate(order)}

    def key(name: str) -> tuple[int, str]:
        return rank.get(name, len(rank)), name

    counts: dict[tuple[str, str, str], list[int]] = {}
    raters: dict[tuple[str, str], set[str]] = {}
    for vote in votes:
        a, b = sorted((vote.left, vote.right), key=key)
        raters.setdefault((a, b), set()).add(vote.rater)
        for criterion in CRITERIA:
            c = counts.setdefault((a, b, criterion), [0, 0, 0])
            winner = vote.winner(criterion)
            c[0 if winner == a else 1 if winner == b else 2] += 1
    rows = [PairTally(a, b, crit, sum(c), c[0], c[1], c[2], len(raters[a, b])) for (a, b, crit), c in counts.items()]
    return sorted(rows, key=lambda r: (key(r.a), key(r.b), CRITERIA.index(r.criterion)))


TALLY_HEADERS = [
    "pair (A vs B)",
    "question",
    "votes",
    "raters",
    "A preferred",
    "B preferred",
    "no preference",
    "A win rate [95% CI]",
]


def tally_table(rows: Sequence[PairTally]) -> list[list]:
    """The tally as table rows under `TALLY_HEADERS` (win rates of the votes that prefer one side)."""
    table = []
    for r in rows:
        lo, hi = r.interval
        rate = "–" if r.win_rate is None else f"{r.win_rate:.0%} [{lo:.0%}, {hi:.0%}]"
        table.append([f"{r.a} vs {r.b}", r.criterion, r.votes, r.raters, r.a_wins, r.b_wins, r.ties, rate])
    return table
