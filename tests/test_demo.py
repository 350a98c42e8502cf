"""`vin demo`: votes, tally, study, rendering and generation called directly with a tiny model; the page in a
real headless browser (Chromium + playwright; skipped with the reason when either is missing)."""

import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vin.cli import main
from vin.demo.browser import browser_missing, free_port, local_page, serve
from vin.demo.limits import Caps
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
    assert table[0] == ["vin vs autoregressive", "consistency", 11, 1, 8, 2, 1, "80% [49%, 94%]"]  # one rater
    assert table[1][-1] == "71% [36%, 92%]"  # 5 of 7: Wilson [0.3589, 0.9178]
    assert table[2] == ["vin vs independent", "consistency", 1, 1, 1, 0, 0, "100% [21%, 100%]"]
    several = [Vote(f"r{i}", "ckpt", 8, 2, 0, "vin", "fifo", "left", "left") for i in range(3)] + [vote("vin", "fifo")]
    assert [r.raters for r in tally(several)] == [4, 4]  # the tally says how many raters it holds


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

    d = Demo(checkpoint, VoteStore(tmp_path / "votes.sqlite"), tmp_path / "work", features="pixels", caps=Caps(frames=4096))
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
    missing = str(tmp_path / "nope")  # the page serves its checkpoints only; it does not say what exists
    assert page_error(checkpoint=missing) == f"that checkpoint is not served here: choose one of {checkpoint.name}"
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
    assert note.startswith("1 vote on this study (8 frames, 2 steps) from 1 rater, in votes.sqlite")
    a_left = trial.left == "vin"  # vin is A (first in the study); left won consistency, right won quality
    assert rows[0][:7] == ["vin vs independent", "consistency", 1, 1, int(a_left), int(not a_left), 0]
    assert rows[1][:7] == ["vin vs independent", "quality", 1, 1, int(not a_left), int(a_left), 0]


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
    assert "steps must be at most 100, got 101" in cli_error("demo", *args, "--prepare", "--study-steps", "101")
    assert cli_error("demo", *args, "--max-frames", "2", "--prepare") == f"--max-frames 2 is less than one chunk of {checkpoint.name} (4 frames)"
    assert cli_error("demo", *args, "--max-steps", "0", "--prepare") == "--max-steps must be a whole number of at least 1, got 0"
    inside = ["--checkpoint", str(checkpoint), "--study", str(tmp_path / "s"), "--votes", str(tmp_path / "s" / "v.sqlite")]
    assert "inside the study folder" in cli_error("demo", *inside, "--prepare")
    raised = CliRunner().invoke(main, ["demo", *args, "--prepare", "--study-steps", "101", "--max-steps", "101",
                                       "--study-frames", "8", "--study-strategies", "vin,independent", "--study-seeds", "0"])
    assert raised.exit_code == 0 and "study ready: 2 videos" in raised.output, raised.output  # the bound is the server's to raise
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


# a page safe to share (issue 27): caps, checkpoints by name, cancel, votes --------------------------------------------

CAPPED = [  # a request past the page's caps (frames 4096, steps 100, strategies 3): one line, before any work
    ({"steps": 10**30}, "1000000000000000000000000000000 steps is more than this page takes"),
    ({"steps": 10**7}, "10000000 steps is more than this page takes: at most 4096 frames, 100 steps and 3 strategies"),
    ({"steps": 101}, "(set by whoever serves it: vin demo --max-steps); ask for fewer"),
    ({"frames": 4100}, "4100 frames is more than this page takes"),
    ({"strategies": ("vin", "full", "independent", "fifo")}, "4 strategies is more than this page takes"),
    ({"steps": 100, "frames": 8}, None),  # at the caps: sampled
]


@pytest.mark.parametrize("request_, message", CAPPED, ids=[m or "at the caps" for _, m in CAPPED])
def test_requests_past_the_page_caps_are_refused(demo, request_, message, monkeypatch):
    from vin.demo.core import GenerateRequest

    request = GenerateRequest(**{"frames": 8, "steps": 2, **request_})
    if message is None:
        assert demo.sample(request).describe().startswith("1 video of 8 frames (16x16), 100 steps")
        return
    monkeypatch.setattr(demo, "model", lambda *a: pytest.fail("the model was asked for"))
    with pytest.raises(VinError) as err:
        demo.sample(request)
    assert message in str(err.value)


def test_a_cancelled_request_stops_at_its_next_step_and_frees_the_model(demo):
    from vin.demo.core import GenerateRequest, Stopped

    asked = []

    def cancelled() -> bool:  # the page goes away during the third model call's wait
        asked.append(1)
        return len(asked) >= 3

    with pytest.raises(Stopped, match="stopped at its next step"):
        demo.sample(GenerateRequest(frames=8, steps=90, strategies=("vin", "autoregressive")), cancelled=cancelled)
    assert len(asked) == 3  # not 90 steps and a second strategy: it stopped at once
    done = []  # the model lock is free: another request runs (in another thread, as the page's would)
    worker = __import__("threading").Thread(target=lambda: done.append(demo.sample(GenerateRequest(frames=8, steps=2))))
    worker.start()
    worker.join(timeout=60)
    assert done and done[0].describe().startswith("1 video of 8 frames")


TYPED = ["{tmp}/nope", "/etc", "/etc/passwd", "{tmp}/not_a_checkpoint", "{tmp}/garbage", "~www-data", "~notauser", "~/nope"]


def test_typed_checkpoint_folders_answer_alike_and_only_on_loopback(checkpoint, tmp_path):
    """On loopback a typed folder may be loaded; every way it can fail gives the same line, which says nothing of
    what exists. Beyond loopback only the names of the list are taken."""
    from vin.demo.core import NOT_SERVED, Demo

    (tmp_path / "not_a_checkpoint").mkdir()
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "config.json").write_text('{"_class_name": "SomethingElse"}')
    (tmp_path / "garbage" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 64)
    local = Demo(checkpoint, VoteStore(tmp_path / "v.sqlite"), tmp_path / "w", typed_paths=True)
    for text in (t.format(tmp=tmp_path) for t in TYPED):
        with pytest.raises(VinError) as err:
            local.model(text)
        assert str(err.value) == NOT_SERVED
    assert local.model(str(checkpoint)).config.chunk_frames == 4  # a real folder loads
    shared = Demo([checkpoint, "default"], VoteStore(tmp_path / "v.sqlite"), tmp_path / "w")
    assert shared.names == [checkpoint.name, "default"]
    for text in (str(checkpoint), "full", "/etc", "~www-data"):
        with pytest.raises(VinError, match=f"^that checkpoint is not served here: choose one of {checkpoint.name}, default$"):
            shared.model(text)
    assert shared.model("default").config.sample_size == 32


def test_checkpoint_names_and_public_lines():
    from vin.demo.limits import checkpoint_names, public

    names = checkpoint_names([Path("/srv/runs/a/final"), Path("/srv/runs/b/final"), Path("/srv/x/mine"),
                              Path("/srv/x/../x/mine")])  # fmt: skip
    assert list(names) == ["a/final", "b/final", "mine"]  # the same folder given twice is listed once
    line = "error: checkpoint /srv/x/mine: its config.json names no model; see /home/me/.cache/vin/log.txt"
    assert public(line, [(Path("/srv/x/mine"), "mine")]) == "error: checkpoint mine: its config.json names no model; see log.txt"
    assert public("error: 1/60 steps, a/b and ~/runs stay") == "error: 1/60 steps, a/b and ~/runs stay"


def test_one_vote_per_rater_and_pair_and_a_rate_limit(demo, tmp_path):
    from vin.demo.limits import VoteLimit
    from vin.demo.study import Trial

    pair, again = Trial("vin", "independent", 0), Trial("independent", "vin", 0)  # sides do not make another pair
    assert demo.vote(pair, "left", "left", "alice", "10.0.0.1") == 1
    with pytest.raises(VinError, match=r"already voted on this pair \(vote 1\): one vote per rater and pair"):
        demo.vote(again, "right", "right", "alice", "10.0.0.1")
    assert demo.vote(Trial("vin", "independent", 1), "left", "none", "alice", "10.0.0.1") == 2  # another seed
    with pytest.raises(VinError, match="voted on every pair of this study"):
        demo.trial(random.Random(0), "alice")
    assert demo.trial(random.Random(0), "bob")[0].seed in (0, 1)  # bob has pairs left
    limit = VoteLimit(2)
    limit.count("10.0.0.9", now=100.0)
    limit.count("10.0.0.9", now=130.0)
    with pytest.raises(VinError, match="at most 2 a minute; vote again in 10 s"):
        limit.check("10.0.0.9", now=150.0)
    limit.check("10.0.0.9", now=160.5)  # the first left the minute
    limit.check("10.0.0.8", now=150.0)  # another address
    demo.vote_limit = VoteLimit(1)
    demo.vote(pair, "left", "left", "carol", "10.0.0.2")
    with pytest.raises(VinError, match="too many votes from your address"):
        demo.vote(pair, "left", "left", "dave", "10.0.0.2")
    note, rows = demo.results()
    assert note.startswith("3 votes on this study (8 frames, 2 steps) from 2 raters") and rows[0][3] == 2


def test_study_json_and_the_page_name_no_absolute_path(demo, tmp_path):
    from vin.demo.study import MANIFEST

    manifest = json.loads((demo.study.folder / MANIFEST).read_text())
    assert manifest["checkpoint"] == demo.checkpoint.name and str(tmp_path.parent) not in json.dumps(manifest)
    assert not any(str(v).startswith(("/", "~")) for v in manifest.values())
    note, _ = demo.results()
    assert str(tmp_path) not in note and note.endswith("Win rates leave out 'no preference'; 95% Wilson intervals.")


# the page through gradio's own client, as a visitor's script would use it ---------------------------------------------

GRADIO_CLIENT = None
try:
    import gradio_client  # noqa: F401
except ImportError:
    GRADIO_CLIENT = 'gradio_client is not installed (pip install -e ".[demo]")'
BASE = {"ckpt": None, "f": 8, "s": 2, "sd": 0, "chosen": ["vin"], "fu": "early", "fr": 0.4, "k": None, "gt": "global"}
RUN = [  # (what the request changes, what the status line says); served: --max-frames 2048 --max-steps 100 --max-strategies 2
    ({"s": 1e30}, "steps is more than this page takes: at most 2048 frames, 100 steps and 2 strategies per request"),
    ({"s": 1e7}, "error: 10000000 steps is more than this page takes"),
    ({"f": 4096}, "error: 4096 frames is more than this page takes"),
    ({"chosen": ["vin", "independent", "autoregressive"]}, "error: 3 strategies is more than this page takes"),
    ({"f": 10}, "error: 10 frames cannot be cut into chunks of 4 frames"),
    ({"ckpt": "/etc"}, "error: no checkpoint this page can load there: choose one from the list"),
    ({"ckpt": "/etc/passwd"}, "error: no checkpoint this page can load there: choose one from the list"),
    ({"ckpt": "/no/such/folder"}, "error: no checkpoint this page can load there: choose one from the list"),
    ({"ckpt": "~www-data"}, "error: no checkpoint this page can load there: choose one from the list"),
    ({"ckpt": "~notauser"}, "error: no checkpoint this page can load there: choose one from the list"),
    ({"ckpt": "second"}, "1 video of 8 frames (16x16), 2 steps, seed 0, same noise"),  # the other served checkpoint
]


def _client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False, analytics_enabled=False)


def _status(outputs) -> str:
    """The status line among a handler's outputs (the first text that is one)."""
    return next(o for o in outputs if isinstance(o, str) and (o.startswith(("error:", "vote")) or " video" in o))


def _run(client, **change) -> str:
    return _status(client.predict(*{**BASE, **change}.values(), api_name="/run"))


def _wait_for(log: Path, text: str, count: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while log.read_text().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} {count} times not in the server's log: {log.read_text()[-3000:]}"
        time.sleep(0.2)


def _start_long_run(client):
    """A request that would take minutes (2048 frames, 100 steps, two strategies), once it is sampling."""
    from gradio_client.utils import Status

    job = client.submit(*{**BASE, "f": 2048, "s": 100, "chosen": ["vin", "autoregressive"]}.values(), api_name="/run")
    deadline = time.monotonic() + 60
    while job.status().code not in (Status.PROCESSING, Status.PROGRESS):
        assert time.monotonic() < deadline, job.status()
        time.sleep(0.2)
    time.sleep(2)
    return job


@pytest.mark.skipif(GRADIO_CLIENT is not None, reason=f"gradio client test: {GRADIO_CLIENT}")
def test_the_page_through_gradios_client(checkpoint, tmp_path):
    """vin demo on loopback with two checkpoints and caps: every hostile request a visitor's script can make."""
    import shutil

    import httpx

    import vin

    shutil.copytree(checkpoint, tmp_path / "second")
    study, votes = tmp_path / "study", tmp_path / "votes.sqlite"
    args = ["--checkpoint", str(checkpoint), "--checkpoint", str(tmp_path / "second"), "--study", str(study),
            "--votes", str(votes), "--study-frames", "8", "--study-steps", "2", "--study-strategies", "vin,independent",
            "--study-seeds", "0,1", "--features", "pixels", "--max-frames", "2048", "--max-steps", "100",
            "--max-strategies", "2", "--votes-per-minute", "3"]  # fmt: skip
    log = tmp_path / "server.log"
    with serve(args, free_port(), limit_s=400, log=log, env={"OMP_NUM_THREADS": "1"}) as url:
        config = httpx.get(url + "config").text  # no path of the server's: not the tmp folders, nor the install
        assert not [p for p in (str(tmp_path), str(checkpoint.parent), str(Path(vin.__file__).parent), "vin-demo-") if p in config]
        [box] = [c["props"] for c in json.loads(config)["components"] if c["props"].get("elem_id") == "checkpoint"]
        assert box["choices"] == [[checkpoint.name] * 2, ["second"] * 2] and box["allow_custom_value"] is True  # loopback
        name = f"upload-{time.time_ns()}.bin"  # uploads are off: refused, and nothing is kept
        upload = httpx.post(url + "gradio_api/upload", files={"files": (name, b"\0" * 100_000)})
        assert upload.status_code == 413 and not list(Path(tempfile.gettempdir(), "gradio").glob(f"**/{name}"))
        client = _client(url)
        for change, line in RUN:
            assert line in _run(client, **change), change

        job = _start_long_run(client)  # cancelled: it stops at its next step and the model is free at once
        job.cancel()
        started = time.monotonic()
        assert _run(_client(url)).startswith("1 video of 8 frames")
        assert time.monotonic() - started < 45
        _wait_for(log, "stopped at its next step", 1)
        code = (f"import os, time; from tests.test_demo import _client, _start_long_run; _start_long_run(_client({url!r})); "
                "os._exit(0)")  # a page closed mid-request: the script dies without a word
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120, check=True)
        _wait_for(log, "stopped at its next step", 2)
        assert _run(_client(url)).startswith("1 video of 8 frames")

        alice, bob = _client(url), _client(url)  # votes: one per rater and pair; 3 a minute from one address
        alice.predict(api_name="/draw")
        assert _status(alice.predict("left", "none", api_name="/cast")) == "vote 1 recorded; here is the next pair"
        assert _status(alice.predict("right", "left", api_name="/cast")).startswith("vote 2 recorded; you have voted on every pair")
        for _ in range(3):  # stuffing the pair on screen
            assert "already voted on this pair (vote 2)" in _status(alice.predict("left", "left", api_name="/cast"))
        bob.predict(api_name="/draw")
        assert _status(bob.predict("left", "left", api_name="/cast")).startswith("vote 3 recorded")
        assert "too many votes from your address: at most 3 a minute" in _status(bob.predict("left", "left", api_name="/cast"))
        note = alice.predict(api_name="/show")[0]
        assert note.startswith("3 votes on this study (8 frames, 2 steps) from 2 raters, in votes.sqlite")
    manifest = (study / "study.json").read_text()
    assert str(tmp_path) not in manifest and f'"checkpoint": "{checkpoint.name}"' in manifest
    assert len(VoteStore(votes).votes()) == 3


def _listening(port: int) -> list[str]:
    """The local addresses (hex, as /proc/net/tcp writes them) with a listening TCP socket on `port`."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return [r[1].split(":")[0] for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == port]


@pytest.mark.skipif(GRADIO_CLIENT is not None or not Path("/proc/net/tcp").exists(),
                    reason=f"gradio client test: {GRADIO_CLIENT or 'no /proc/net/tcp'}")  # fmt: skip
def test_host_0000_binds_every_address_and_takes_no_typed_folder(checkpoint, tmp_path):
    import httpx
    from gradio_client.exceptions import AppError

    args = ["--checkpoint", str(checkpoint), "--study", str(tmp_path / "study"), "--votes", str(tmp_path / "v.sqlite"),
            "--study-frames", "8", "--study-steps", "2", "--study-strategies", "vin,independent", "--study-seeds", "0",
            "--features", "pixels"]  # fmt: skip
    port = free_port()
    with serve(args, port, limit_s=200, log=tmp_path / "server.log", env={"OMP_NUM_THREADS": "1"}, host="0.0.0.0") as url:
        assert _listening(port) == ["00000000"]  # 0.0.0.0, not 127.0.0.1 (0100007F)
        config = httpx.get(url + "config").json()
        [box] = [c["props"] for c in config["components"] if c["props"].get("elem_id") == "checkpoint"]
        assert box["allow_custom_value"] is False and box["choices"] == [[checkpoint.name, checkpoint.name]]
        client = _client(url)
        for typed in ("/etc", str(checkpoint), "default"):
            try:
                line = _run(client, ckpt=typed)
            except AppError as err:  # gradio's own refusal of a value not in the list
                line = str(err)
            assert "not" in line and "1 video" not in line and "/etc/" not in line, line
        assert _run(client, ckpt=checkpoint.name).startswith("1 video of 8 frames")
