"""`vin demo`: votes, tally, study, rendering and generation called directly with a tiny model; the page in a
real headless browser (Chromium + playwright; skipped with the reason when either is missing)."""

import os
import random
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vin.cli import main
from vin.demo.browser import browser_missing, free_port, local_page, serve
from vin.demo.render import SEAM, side_by_side_frames, view_scale
from vin.demo.study import Study
from vin.demo.votes import TALLY_HEADERS, Vote, VoteStore, tally, tally_table, wilson_interval
from vin.errors import VinError
from vin.videos import read_video

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The tiny config trained for 6 steps (as in test_cli)."""
    out = tmp_path_factory.mktemp("ckpt")
    result = CliRunner().invoke(main, ["train", str(ROOT / "configs" / "tiny.yaml"), f"train.out_dir={out}",
                                       "train.steps=6", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def vote(left="vin", right="autoregressive", consistency="left", quality="none", seed=0) -> Vote:
    return Vote("rater", "ckpt", 8, 2, seed, left, right, consistency, quality)


def cli_error(*args: str) -> str:
    """The one line `vin ARGS` prints on stderr (without its 'error: ')."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    return line.removeprefix("error: ")


# votes ---------------------------------------------------------------------------------------------------------------


def test_votes_are_rows_that_survive_a_restart(tmp_path):
    path = tmp_path / "votes.sqlite"
    store = VoteStore(path)
    cast = [vote(), vote("autoregressive", "vin", "right", "left", seed=3), vote("vin", "independent", "none", "right")]
    ids = [store.record(v) for v in cast]
    assert ids == [1, 2, 3]
    del store
    again = VoteStore(path)  # a new process would see exactly this file
    assert again.votes() == cast
    with sqlite3.connect(path) as db:  # one row per vote, with what was shown on which side
        rows = db.execute(
            "SELECT left_strategy, right_strategy, consistency, quality, seed FROM votes ORDER BY id"
        ).fetchall()
    assert rows == [("vin", "autoregressive", "left", "none", 0), ("autoregressive", "vin", "right", "left", 3),
                    ("vin", "independent", "none", "right", 0)]  # fmt: skip


def test_a_vote_is_on_disk_before_record_returns(tmp_path):
    """The process is killed (SIGKILL, no clean-up) right after record() returns: the row is there."""
    path = tmp_path / "votes.sqlite"
    code = ("import os, signal; from vin.demo.votes import Vote, VoteStore; "
            f"VoteStore({str(path)!r}).record(Vote('r', 'c', 8, 2, 0, 'vin', 'fifo', 'left', 'right')); "
            "os.kill(os.getpid(), signal.SIGKILL)")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=False)
    assert proc.returncode == -9, proc.stderr
    assert VoteStore(path).votes() == [Vote("r", "c", 8, 2, 0, "vin", "fifo", "left", "right")]


def test_bad_votes_and_bad_files_are_one_line_errors(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite")
    with pytest.raises(VinError, match="answer both questions"):
        store.record(vote(quality=""))
    with pytest.raises(VinError, match="two different strategies"):
        store.record(vote(right="vin"))
    assert store.votes() == []
    (tmp_path / "text.sqlite").write_text("not a database at all " * 100)
    with pytest.raises(VinError, match="is not a database; give a new file name"):
        VoteStore(tmp_path / "text.sqlite")
    with sqlite3.connect(tmp_path / "other.sqlite") as db:
        db.execute("CREATE TABLE votes (who TEXT)")
    with pytest.raises(VinError, match="a 'votes' table that vin did not write"):
        VoteStore(tmp_path / "other.sqlite")
    with pytest.raises(VinError, match="does not exist; create it first"):
        VoteStore(tmp_path / "missing" / "v.sqlite")


def test_wilson_interval_by_hand():
    # 8 of 10: p = 0.8, z = 1.96; centre (0.8 + 1.96^2/20) / (1 + 1.96^2/10) = 0.7167,
    # half 1.96 * sqrt(0.8 * 0.2 / 10 + 1.96^2 / 400) / 1.3841 = 0.2266 -> [0.4902, 0.9433]
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 4)  # 0 of 4: [0, z^2 / (n + z^2)] = [0, 0.4899]
    assert lo == 0.0 and round(hi, 4) == 0.4899


def test_tally_counts_strategies_whichever_side_they_were_on():
    votes = ([vote("vin", "autoregressive", "left", "left")] * 4 + [vote("autoregressive", "vin", "right", "none")] * 4
             + [vote("autoregressive", "vin", "left", "left")] * 2 + [vote("vin", "autoregressive", "none", "left")]
             + [vote("independent", "vin", "right", "right")])  # fmt: skip
    rows = tally(votes, order=("vin", "autoregressive", "independent"))
    assert [(r.a, r.b, r.criterion) for r in rows] == [("vin", "autoregressive", "consistency"), ("vin", "autoregressive", "quality"),
                                                       ("vin", "independent", "consistency"), ("vin", "independent", "quality")]  # fmt: skip
    c, q = rows[0], rows[1]
    assert (c.votes, c.a_wins, c.b_wins, c.ties) == (11, 8, 2, 1)  # consistency: 4 + 4 for vin, 2 against, 1 tie
    assert (q.votes, q.a_wins, q.b_wins, q.ties) == (11, 5, 2, 4)  # quality: 4 + 1 for vin, 2 against, 4 ties
    assert c.win_rate == 0.8 and c.interval == wilson_interval(8, 10)
    table = tally_table(rows)
    assert len(table[0]) == len(TALLY_HEADERS)
    assert table[0] == ["vin vs autoregressive", "consistency", 11, 8, 2, 1, "80% [49%, 94%]"]
    assert table[1][-1] == "71% [36%, 92%]"  # 5 of 7: Wilson [0.3589, 0.9178]
    assert table[2] == ["vin vs independent", "consistency", 1, 1, 0, 0, "100% [21%, 100%]"]


# the study and the view ---------------------------------------------------------------------------------------------


def test_side_by_side_view_marks_chunk_boundaries():
    grey = np.full((8, 16, 16, 3), 128, np.uint8)
    frames = list(side_by_side_frames([grey, grey], ["vin", "independent"], chunk=4, scale=view_scale(16)))
    assert view_scale(16) == 16 and len(frames) == 8
    h, w, _ = frames[0].shape
    assert h % 2 == 0 and w % 2 == 0 and w > 2 * 16 * 16  # two enlarged panels with a gap
    corner = [tuple(f[30, 1]) for f in frames]  # on the border of the first panel
    seams = [t for t, c in enumerate(corner) if c == SEAM]
    assert seams == [3, 4]  # the last frame of chunk 1 and the first of chunk 2
    with pytest.raises(VinError, match="one shape"):
        list(side_by_side_frames([grey, grey[:4]], ["a", "b"], 4, 1))


def test_study_prepares_checks_and_balances_pairs(checkpoint, tmp_path):
    from vin.checkpoint import load_model

    model = load_model(checkpoint)
    study = Study(tmp_path / "study", checkpoint, 8, 2, ["vin", "independent", "autoregressive"], [0, 1]).open(model)
    assert len(study.missing()) == 6
    assert study.prepare(model, echo=lambda line: None) == 6 and study.missing() == []
    assert read_video(study.path("vin", 1)).shape == (8, 128, 128, 3)  # upscaled 8 for viewing
    assert study.prepare(model, echo=lambda line: None) == 0
    rng = random.Random(0)
    counts = Counter({("independent", "vin"): 3, ("autoregressive", "vin"): 3})
    draws = [study.draw(rng, counts) for _ in range(40)]
    assert {tuple(sorted((t.left, t.right))) for t in draws} == {
        ("autoregressive", "independent")
    }  # the least-voted pair
    assert {t.left for t in draws} == {"autoregressive", "independent"}  # sides at random
    assert {t.seed for t in draws} == {0, 1}
    with pytest.raises(VinError, match="holds videos made with steps 2"):
        Study(tmp_path / "study", checkpoint, 8, 3, ["vin", "independent"], [0]).open(model)
    with pytest.raises(VinError, match="cannot be cut into chunks"):
        Study(tmp_path / "other", checkpoint, 10, 2, ["vin", "independent"], [0]).open(model)
    with pytest.raises(VinError, match="at least two different strategies"):
        Study(tmp_path / "other", checkpoint, 8, 2, ["vin"], [0])


# the app's functions --------------------------------------------------------------------------------------------------


@pytest.fixture
def demo(checkpoint, tmp_path):
    from vin.demo.core import Demo

    d = Demo(checkpoint, VoteStore(tmp_path / "votes.sqlite"), tmp_path / "work", features="pixels")
    d.study = Study(tmp_path / "study", checkpoint, 8, 2, ["vin", "independent"], [0, 1]).open(d.model())
    return d


def test_generate_side_by_side_from_the_same_noise(demo):
    from vin.demo.core import HEADERS, GenerateRequest
    from vin.generation.api import generate

    seen = []
    result = demo.generate(GenerateRequest(frames=8, steps=2, seed=5, strategies=("vin", "autoregressive")),
                           lambda fraction, text: seen.append((fraction, text)))  # fmt: skip
    assert [t for _, t in seen] == ["vin: sampling (1 of 2)", "autoregressive: sampling (2 of 2)", "writing the videos",
                                    "vin: FLOPs and figures (1 of 2)", "autoregressive: FLOPs and figures (2 of 2)"]  # fmt: skip
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)
    assert [row[0] for row in result.rows] == ["vin", "autoregressive"] and all(
        len(r) == len(HEADERS) for r in result.rows
    )
    assert [row[2] for row in result.rows] == ["2", "4"]  # model calls: steps; chunks x steps
    assert all(f > 0 for f in result.flops.values()) and result.seconds.keys() == {"vin", "autoregressive"}
    view = read_video(result.view)
    assert view.shape[0] == 8 and view.shape[2] > 2 * 16 * 16
    own = read_video(result.videos["vin"])
    direct = generate(demo.model(), 8, 2, 5, "vin").video.numpy()  # the same seed is the same video
    assert own.shape == (8, 16 * 16 + 2 * 3 + 26, 16 * 16 + 2 * 3, 3)
    inner = own[:, 26 + 3 : 26 + 3 + 256 : 16, 3 : 3 + 256 : 16].astype(int)  # one pixel of every enlarged block
    assert np.abs(inner - direct.astype(int)).mean() < 6  # H.264 at crf 14
    assert "2 videos of 8 frames (16x16), 2 steps, seed 5" in result.summary


def test_bad_input_gives_the_cli_line(demo, checkpoint, tmp_path, monkeypatch):
    from vin.demo.core import GenerateRequest
    from vin.generation import memory

    def page_error(**request) -> str:
        with pytest.raises(VinError) as err:
            demo.generate(GenerateRequest(**{"frames": 8, "steps": 2, **request}))
        return str(err.value)

    out = str(tmp_path / "v.mp4")
    assert page_error(frames=10) == cli_error(
        "generate", "--checkpoint", str(checkpoint), "--frames", "10", "--out", out
    )
    missing = str(tmp_path / "nope")
    assert page_error(checkpoint=missing) == cli_error(
        "generate", "--checkpoint", missing, "--frames", "8", "--out", out
    )
    assert page_error(steps=0) == cli_error(
        "generate", "--checkpoint", str(checkpoint), "--frames", "8", "--steps", "0", "--out", out
    )
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * 2**20)
    line = page_error(frames=4096)
    assert "4096 frames with vin need about" in line and "would fit" in line
    assert line == cli_error("generate", "--checkpoint", str(checkpoint), "--frames", "4096", "--out", out)
    assert page_error(strategies=()) == "choose at least one strategy"
    assert not (tmp_path / "v.mp4").exists()


def test_trial_vote_and_results(demo):
    trial, left, right = demo.trial(random.Random(1))
    assert {trial.left, trial.right} == {"vin", "independent"} and left.is_file() and right.is_file()
    assert left == demo.study.path(trial.left, trial.seed)
    with pytest.raises(VinError, match="press 'Next pair' first"):
        demo.vote(None, "left", "left", "r")
    with pytest.raises(VinError, match="answer both questions"):
        demo.vote(trial, "left", None, "r")
    assert demo.vote(trial, "left", "right", "r") == 1
    note, rows = demo.results()
    assert note.startswith("1 vote on this study (8 frames, 2 steps)")
    a_left = trial.left == "vin"  # vin is A (first in the study); left won consistency, right won quality
    assert rows[0][:6] == ["vin vs independent", "consistency", 1, int(a_left), int(not a_left), 0]
    assert rows[1][:6] == ["vin vs independent", "quality", 1, int(not a_left), int(a_left), 0]


# the command ----------------------------------------------------------------------------------------------------------


def test_demo_without_gradio_says_how_to_install(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    line = cli_error(
        "demo", "--checkpoint", str(checkpoint), "--port", str(free_port()), "--votes", str(tmp_path / "v.sqlite")
    )
    assert (
        line
        == 'vin demo needs gradio, an optional extra: pip install -e ".[demo]" (in a clone of vin) or pip install gradio'
    )


def test_demo_command_errors_are_one_line(checkpoint, tmp_path):
    missing = str(tmp_path / "nope")
    assert "does not exist" in cli_error("demo", "--checkpoint", missing, "--prepare", "--study", str(tmp_path / "s"))
    args = ["--checkpoint", str(checkpoint), "--study", str(tmp_path / "s"), "--votes", str(tmp_path / "v.sqlite")]
    assert "cannot be cut into chunks" in cli_error("demo", *args, "--prepare", "--study-frames", "10")
    assert "at least two different strategies" in cli_error("demo", *args, "--prepare", "--study-strategies", "vin")
    with __import__("socket").socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert cli_error("demo", *args, "--port", port).startswith(f"cannot listen on 127.0.0.1:{port}")


# the page, in a real browser ------------------------------------------------------------------------------------------

SKIP_BROWSER = browser_missing()


@pytest.mark.skipif(SKIP_BROWSER is not None, reason=f"browser test: {SKIP_BROWSER}")
def test_the_page_in_a_headless_browser(checkpoint, tmp_path):
    """vin demo with the tiny model: a bad request shows the CLI's line; generate; vote; the tally changes."""
    from vin.demo.core import HEADERS

    study, votes = tmp_path / "study", tmp_path / "votes.sqlite"
    args = ["--checkpoint", str(checkpoint), "--study", str(study), "--votes", str(votes), "--study-frames", "8",
            "--study-steps", "2", "--study-strategies", "vin,independent", "--study-seeds", "0", "--features", "pixels"]  # fmt: skip
    env = {"OMP_NUM_THREADS": "1"}
    prepared = subprocess.run([sys.executable, "-m", "vin", "demo", *args, "--prepare"], capture_output=True, text=True,
                              timeout=300, env={**os.environ, **env}, check=False)  # fmt: skip
    assert prepared.returncode == 0 and "study ready: 2 videos" in prepared.stdout, prepared.stderr
    shots = Path(os.environ.get("VIN_DEMO_SCREENSHOTS", tmp_path))
    started = time.monotonic()
    with serve(args, free_port(), limit_s=300, log=tmp_path / "server.log", env=env) as url, local_page(url) as page:
        page.goto(url)
        status = page.locator("#generate-status textarea")
        page.locator("#frames input").fill("10")
        page.locator("#steps input").fill("2")
        page.get_by_role("button", name="Generate", exact=True).click()
        page.wait_for_function("document.querySelector('#generate-status textarea').value !== ''", timeout=60_000)
        assert (
            status.input_value()
            == f"error: {cli_error('generate', '--checkpoint', str(checkpoint), '--frames', '10', '--out', str(tmp_path / 'v.mp4'))}"
        )
        page.locator("#frames input").fill("8")
        page.get_by_label("autoregressive").check()
        page.get_by_role("button", name="Generate", exact=True).click()
        page.wait_for_function(
            "document.querySelector('#generate-status textarea').value.includes(' s in all')", timeout=120_000
        )
        assert status.input_value().startswith("2 videos of 8 frames (16x16), 2 steps, seed 0, same noise; vin: ")
        assert page.locator("#view video").get_attribute("src").endswith("side_by_side.mp4")
        cells = [line.strip() for line in page.locator("#figures").inner_text().splitlines() if line.strip()]
        assert cells.count("vin") == 1 and cells.count("autoregressive") == 1  # a row each, under the headers
        assert cells.index("autoregressive") - cells.index("vin") == len(HEADERS)
        page.screenshot(path=str(shots / "demo_generate.png"), full_page=True)

        page.get_by_role("tab", name="Results").click()
        note = page.locator("#results-note")
        note.get_by_text("0 votes on this study").wait_for(timeout=30_000)
        page.get_by_role("tab", name="Compare").click()
        page.locator("#left video").wait_for(timeout=60_000)
        page.locator("#consistency").get_by_label("Left").check()
        page.locator("#quality").get_by_label("No preference").check()
        page.screenshot(path=str(shots / "demo_compare.png"), full_page=True)
        page.get_by_role("button", name="Vote", exact=True).click()
        page.wait_for_function("document.querySelector('#compare-status textarea').value.startsWith('vote 1 recorded')",
                               timeout=30_000)  # fmt: skip
        page.get_by_role("tab", name="Results").click()
        note.get_by_text("1 vote on this study").wait_for(timeout=30_000)
        assert "vin vs independent" in page.locator("#tally").inner_text()
        page.screenshot(path=str(shots / "demo_results.png"), full_page=True)
    print(f"browser test: {time.monotonic() - started:.1f} s with the server's start")
    [cast] = VoteStore(votes).votes()  # on disk, after the server stopped
    assert cast.consistency == "left" and cast.quality == "none" and {cast.left, cast.right} == {"vin", "independent"}
    assert (shots / "demo_results.png").stat().st_size > 10_000


@pytest.mark.skipif(SKIP_BROWSER is not None, reason=f"browser test: {SKIP_BROWSER}")
def test_a_second_request_queues_and_votes_never_wait(checkpoint, tmp_path):
    """Three sessions: a long generation runs, a second one waits in the queue, a vote goes through meanwhile."""
    args = ["--checkpoint", str(checkpoint), "--study", str(tmp_path / "study"), "--votes", str(tmp_path / "v.sqlite"),
            "--study-frames", "8", "--study-steps", "2", "--study-strategies", "vin,independent", "--study-seeds", "0",
            "--features", "pixels"]  # fmt: skip
    done = "document.querySelector('#generate-status textarea').value.includes(' s in all')"
    log = tmp_path / "server.log"
    with serve(args, free_port(), limit_s=300, log=log, env={"OMP_NUM_THREADS": "1"}) as url, local_page(url) as first:
        second, rater = first.context.new_page(), first.context.new_page()
        for page in (first, second, rater):
            page.goto(url)
        rater.get_by_role("tab", name="Compare").click()
        rater.locator("#left video").wait_for(timeout=30_000)
        rater.locator("#consistency").get_by_label("Right").check()
        rater.locator("#quality").get_by_label("Left").check()
        first.locator("#frames input").fill("1024")  # sampling, figures and encoding: about 20 s on one thread
        first.locator("#steps input").fill("60")
        first.get_by_role("button", name="Generate", exact=True).click()
        first.locator("#view").get_by_text(re.compile(r"\d+/60 steps")).wait_for(timeout=60_000)
        second.locator("#frames input").fill("8")
        second.locator("#steps input").fill("2")
        second.get_by_role("button", name="Generate", exact=True).click()
        second.locator("#view").get_by_text("queue: 1/1").wait_for(timeout=30_000)
        rater.get_by_role("button", name="Vote", exact=True).click()
        rater.wait_for_function("document.querySelector('#compare-status textarea').value.startsWith('vote 1 recorded')",
                                timeout=30_000)  # fmt: skip
        assert first.locator("#generate-status textarea").input_value() == ""  # still generating
        assert second.locator("#generate-status textarea").input_value() == ""  # still waiting
        first.wait_for_function(done, timeout=240_000)
        second.wait_for_function(done, timeout=60_000)
        assert second.locator("#generate-status textarea").input_value().startswith("1 video of 8 frames")
    assert len(VoteStore(tmp_path / "v.sqlite").votes()) == 1
