"""The gradio page of `vin demo`: Generate, Compare (the pairwise user study) and Results.

Every handler calls `vin.demo.core.Demo` and shows a user error as the CLI's one line (`error: ...`) in the
tab's status box, never a traceback, and never a path of the server's (`Demo.public`). Generation runs in
gradio's queue, one request at a time (a second one waits in line, with its place shown); a request cancelled
or abandoned (its page closed) stops at its next step (`request_gone`). Votes and tallies have their own
queues and never wait for it. Uploads are off (`max_file_size=0`): the page takes none.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable

import gradio as gr
import pandas as pd

from ..errors import VinError
from ..generation.options import DEFAULTS, FUSION_SCHEDULES, GLOBAL_TOKENS, STRATEGIES
from .core import HEADERS, Demo, GenerateRequest, whole
from .votes import QUESTIONS, TALLY_HEADERS

log = logging.getLogger("vin.demo")
ANSWERS = [("Left", "left"), ("Right", "right"), ("No preference", "none")]


def _guard(demo: Demo, fn: Callable[[], tuple], failed: Callable[[str], tuple]) -> tuple:
    """fn()'s outputs; on a VinError (or a bug) the outputs of failed('error: ...'), one line without the server's
    paths, logged if a bug."""
    try:
        return fn()
    except VinError as err:
        return failed(demo.public(f"error: {err}"))
    except Exception as err:  # a bug: one line on the page, the traceback in the server's log
        log.exception("vin demo: unexpected error")
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return failed(demo.public(
            f"error: unexpected {type(err).__name__}{': ' + first if first else ''} (the server's log has the details)"
        ))  # fmt: skip


def request_gone() -> bool:
    """Whether the gradio event this thread works for was cancelled (it left the queue's running jobs) or lost
    its page (gradio marks it not alive). Read from gradio 6's queue; outside an event: False."""
    from gradio.context import LocalContext

    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    queue = getattr(blocks, "_queue", None)
    if queue is None or event_id is None:
        return False
    mine = [event for job in queue.active_jobs if job for event in job if event._id == event_id]
    return not mine or not all(event.alive for event in mine)


def _empty_table(headers: list[str]) -> pd.DataFrame:
    return pd.DataFrame([], columns=headers)


def generate_tab(demo: Demo, frames: int) -> None:
    """Frames, steps, seed, strategies and sampling switches; the side-by-side video, figures and costs."""
    chunk, caps = demo.model().config.chunk_frames, demo.caps
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            checkpoint = gr.Dropdown(demo.names, value=demo.names[0], label="Checkpoint", elem_id="checkpoint",
                                     allow_custom_value=demo.typed_paths, info="served by this page" +
                                     ("; or type a folder written by vin train" if demo.typed_paths else ""))  # fmt: skip
            gr.Markdown(f"Limits of this page: {caps.describe()} (set by whoever serves it).", elem_id="caps")
            n_frames = gr.Number(label="Frames", value=frames, elem_id="frames",
                                 info=f"a multiple of the chunk ({chunk} frames), at most {caps.frames}")  # fmt: skip
            steps = gr.Number(label="Steps", value=min(25, caps.steps), elem_id="steps", minimum=1,
                              info=f"at most {caps.steps}")  # fmt: skip
            seed = gr.Number(label="Seed", value=0, elem_id="seed", minimum=0)
            strategies = gr.CheckboxGroup(list(STRATEGIES), value=["vin"], label="Strategies (side by side, same noise)",
                                          elem_id="strategies")  # fmt: skip
            with gr.Accordion("Sampling switches", open=False):
                fusion = gr.Dropdown(list(FUSION_SCHEDULES), value="early", label="Fusion schedule (vin)")
                fraction = gr.Slider(0, 1, value=DEFAULTS["fusion_fraction"], step=0.05, label="Fusion: fraction of the steps (vin)")
                context = gr.Number(label="Context frames K (blank: the model's)", value=None)
                tokens = gr.Radio(list(GLOBAL_TOKENS), value="global", label="Global tokens (vin)")
            button = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Column(scale=3):
            status = gr.Textbox(label="Status", interactive=False, elem_id="generate-status", max_lines=2)
            gr.Markdown("The strategies side by side, from the same noise; an orange frame marks the frames either side "
                        "of a chunk boundary, and the ticks under each video are the boundaries.")  # fmt: skip
            view = gr.Video(show_label=False, interactive=False, autoplay=True, loop=True, elem_id="view", height=420)
            table = gr.Dataframe(_empty_table(HEADERS), label="vin eval figures, wall time and FLOPs", interactive=False,
                                 elem_id="figures", wrap=True)  # fmt: skip
            files = gr.File(label="Each strategy's video", file_count="multiple", interactive=False)

    button.click(_generate_handler(demo), [checkpoint, n_frames, steps, seed, strategies, fusion, fraction, context, tokens],
                 [status, view, table, files], concurrency_limit=1, concurrency_id="generate")  # fmt: skip


def _generate_handler(demo: Demo) -> Callable:
    """The Generate button's handler: samples the request, then measures it (FLOPs and vin eval figures); both
    stop at their next step once the request is cancelled or its page closed."""

    def run(ckpt, f, s, sd, chosen, fu, fr, k, gt, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (gradio's way)
        """A generator: the videos as soon as they are sampled, then their figures."""
        done = {}

        def report(fraction: float, text: str) -> None:
            progress(fraction, desc=text)

        def failed(line: str) -> tuple:
            return line, None, _empty_table(HEADERS), None

        def sample():
            request = GenerateRequest(ckpt, whole(f, "frames"), whole(s, "steps"), whole(sd, "seed"), tuple(chosen or ()),
                                      fu, float(fr), gt, whole(k, "context frames"))  # fmt: skip
            samples = done["samples"] = demo.sample(request, report, request_gone)
            return (samples.describe() + "; measuring (FLOPs and vin eval figures)...", str(samples.view),
                    _empty_table(HEADERS), [str(p) for p in samples.files.values()])  # fmt: skip

        def measure():
            result = demo.measure(done["samples"], report, request_gone)
            return (
                result.summary,
                str(result.view),
                pd.DataFrame(result.rows, columns=HEADERS),
                [str(p) for p in result.videos.values()],
            )

        yield _guard(demo, sample, failed)
        if "samples" in done:
            yield _guard(demo, measure, failed)

    return run


def compare_tab(demo: Demo, rng: random.Random) -> gr.Tab:
    """Two videos of one seed from two strategies, sides at random; a vote is two answers."""
    s = demo.study
    with gr.Tab("Compare", id="compare") as tab:
        gr.Markdown(f"**Which is better?** Two videos of the same length ({s.frames} frames) and the same noise, made two "
                    "ways; which one is on which side is random. Watch both, answer both questions, then vote.")  # fmt: skip
        trial = gr.State(None)
        rater = gr.State(None)
        with gr.Row():
            left = gr.Video(label="Left", interactive=False, autoplay=True, loop=True, elem_id="left", height=400)
            right = gr.Video(label="Right", interactive=False, autoplay=True, loop=True, elem_id="right", height=400)
        consistency = gr.Radio(ANSWERS, label=QUESTIONS["consistency"], elem_id="consistency")
        quality = gr.Radio(ANSWERS, label=QUESTIONS["quality"], elem_id="quality")
        with gr.Row():
            vote = gr.Button("Vote", variant="primary", elem_id="vote")
            skip = gr.Button("Next pair", elem_id="next")
        status = gr.Textbox(label="Status", interactive=False, elem_id="compare-status", max_lines=2)

    def draw(current, who, message: str = ""):
        """The next pair for this browser session's rater (one id per session, drawn at its first pair)."""
        who = who or uuid.uuid4().hex[:12]

        def work():
            t, lpath, rpath = demo.trial(rng, who, request_gone)
            ready = len(s.strategies) * len(s.seeds) - len(s.missing())
            note = message or f"{ready} of {len(s.strategies) * len(s.seeds)} study videos ready"
            return t, str(lpath), str(rpath), None, None, note, who

        return _guard(demo, work, lambda line: (current, gr.update(), gr.update(), gr.update(), gr.update(), line, who))

    def cast(current, c, q, who, request: gr.Request):
        who = who or uuid.uuid4().hex[:12]
        address = request.client.host if request is not None and request.client is not None else ""
        try:
            row = demo.vote(current, c, q, who, address)
        except VinError as err:
            return current, gr.update(), gr.update(), gr.update(), gr.update(), demo.public(f"error: {err}"), who
        out = draw(current, who, f"vote {row} recorded; here is the next pair")
        if out[5].startswith("error: "):  # recorded, and no pair left to show (or none could be made)
            return (*out[:5], f"vote {row} recorded; {out[5].removeprefix('error: ')}", who)
        return out

    def first(current, who):
        """The tab opened: a pair if none is on screen yet."""
        return draw(current, who) if current is None else (current, *[gr.update()] * 5, who)

    outputs = [trial, left, right, consistency, quality, status, rater]
    vote.click(cast, [trial, consistency, quality, rater], outputs, concurrency_limit=4, concurrency_id="votes")
    skip.click(draw, [trial, rater], outputs, concurrency_limit=4, concurrency_id="draw")
    tab.select(first, [trial, rater], outputs, concurrency_limit=4, concurrency_id="draw")
    return tab


def results_tab(demo: Demo) -> None:
    """Win rates per pair and question, with 95% intervals."""
    with gr.Tab("Results", id="results") as tab:
        note = gr.Markdown(elem_id="results-note")
        table = gr.Dataframe(_empty_table(TALLY_HEADERS), interactive=False, elem_id="tally", wrap=True)
        refresh = gr.Button("Refresh", elem_id="refresh")

    def show():
        def work():
            text, rows = demo.results()
            return text, pd.DataFrame(rows, columns=TALLY_HEADERS)

        return _guard(demo, work, lambda line: (line, _empty_table(TALLY_HEADERS)))

    for event in (tab.select, refresh.click):
        event(show, None, [note, table], concurrency_limit=4, concurrency_id="tally")


def build(demo: Demo, frames: int, seed: int | None = None) -> gr.Blocks:
    """The page. `frames`: the Generate tab's starting length; `seed` fixes the draw of study pairs (tests)."""
    rng = random.Random(seed)
    with gr.Blocks(title="vin demo", analytics_enabled=False, delete_cache=(1800, 7200)) as page:
        gr.Markdown(f"# vin: long videos with Video Interface Networks\nModels: {', '.join(f'`{n}`' for n in demo.names)}"
                    f" · votes: `{demo.votes.path.name}` · study: `{demo.study.folder.name}`")  # fmt: skip
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                generate_tab(demo, frames)
            compare_tab(demo, rng)
            results_tab(demo)
    page.queue(default_concurrency_limit=1)
    return page


def launch(page: gr.Blocks, demo: Demo, host: str, port: int) -> None:
    """Serves `page` on host:port until interrupted (blocks). No uploads (the page takes none: max_file_size=0
    refuses any with 413); files served only from the study folder and the demo's own work folder."""
    page.launch(server_name=host, server_port=port, ssr_mode=False, quiet=True, show_error=False, mcp_server=False,
                pwa=False, allowed_paths=[str(demo.study.folder), str(demo.work_dir)], footer_links=[],
                max_file_size=0)  # fmt: skip
