"""Screenshots of `vin demo` with the shipped model for the README, and the time to the first video.

Starts `vin demo` on 127.0.0.1 (a free port) with a study of two strategies, prepares the study's videos,
then in headless Chromium: one vin video (timed from the click until the page plays it), three
strategies side by side, a few votes, the tally. Writes docs/demo_generate.png, docs/demo_compare.png
and docs/demo_results.png.

    python benchmarks/demo_screenshots.py [--frames 256] [--steps 25] [--out docs]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vin.demo.browser import browser_missing, free_port, local_page, serve

STATUS = "document.querySelector('#generate-status textarea').value"


def generate(page, frames: int, steps: int, strategies: list[str]) -> tuple[float, float]:
    """One request of the Generate tab: seconds from the click until the page plays the video, and until its figures."""
    page.locator("#frames input").fill(str(frames))
    page.locator("#steps input").fill(str(steps))
    for name in ("vin", "full", "autoregressive", "independent", "overlap", "freenoise", "spectral", "fifo"):
        box = page.locator("#strategies").get_by_label(name, exact=True)
        box.check() if name in strategies else box.uncheck()
    before = page.evaluate("[...document.querySelectorAll('#view video')].map(v => v.src).join()")
    started = time.monotonic()
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function("old => [...document.querySelectorAll('#view video')].some(v => v.src !== old && v.readyState >= 2)",
                           arg=before, timeout=1_800_000)  # fmt: skip
    to_video = time.monotonic() - started
    page.wait_for_function(f"{STATUS}.includes(' s in all') || {STATUS}.startsWith('error')", timeout=1_800_000)
    to_figures = time.monotonic() - started
    print(f"{'+'.join(strategies)}, {frames} frames, {steps} steps: {to_video:.1f} s to the video, {to_figures:.1f} s to "
          f"the figures; {page.locator('#generate-status textarea').input_value()}", flush=True)  # fmt: skip
    return to_video, to_figures


def show_mid_video(page, selector: str) -> None:
    """Pauses the videos under `selector` halfway, so that the screenshot shows a frame from the middle."""
    page.wait_for_function(f"[...document.querySelectorAll('{selector} video')].every(v => isFinite(v.duration))",
                           timeout=60_000)  # fmt: skip
    page.evaluate(f"""() => {{ for (const v of document.querySelectorAll('{selector} video')) {{
        v.pause(); v.currentTime = v.duration * 0.55; }} }}""")
    page.wait_for_timeout(800)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--study-frames", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    if browser_missing():
        sys.exit(f"cannot take screenshots: {browser_missing()}")
    work = Path(tempfile.mkdtemp(prefix="vin-demo-shots-"))
    demo_args = ["--study", str(work / "study"), "--votes", str(work / "votes.sqlite"), "--study-strategies",
                 "vin,independent", "--study-seeds", "0", "--study-frames", str(args.study_frames)]  # fmt: skip
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "vin", "demo", *demo_args, "--prepare"], check=True)
    print(f"study prepared in {time.monotonic() - started:.1f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        serve(demo_args, free_port(), limit_s=3600, log=work / "server.log") as url,
        local_page(url, 1400, 1100) as page,
    ):
        page.goto(url)
        generate(page, args.frames, args.steps, ["vin"])
        generate(page, args.frames, args.steps, ["vin", "autoregressive", "independent"])
        show_mid_video(page, "#view")
        page.screenshot(path=str(args.out / "demo_generate.png"), full_page=True)
        for i, (consistency, quality) in enumerate([("Left", "Left"), ("Right", "No preference"), ("Left", "Right")]):
            if i:  # a new session is a new rater: one vote per rater and pair, and this study has one pair
                page.reload()
            page.get_by_role("tab", name="Compare").click()
            page.locator("#left video").wait_for(timeout=600_000)
            page.locator("#consistency").get_by_label(consistency).check()
            page.locator("#quality").get_by_label(quality).check()
            if i == 2:
                show_mid_video(page, "#left")
                show_mid_video(page, "#right")
                page.screenshot(path=str(args.out / "demo_compare.png"), full_page=True)
            page.get_by_role("button", name="Vote", exact=True).click()
            page.wait_for_function(f"document.querySelector('#compare-status textarea').value.startsWith('vote {i + 1} ')",
                                   timeout=600_000)  # fmt: skip
        page.get_by_role("tab", name="Results").click()
        page.locator("#results-note").get_by_text("3 votes on this study").wait_for(timeout=60_000)
        page.screenshot(path=str(args.out / "demo_results.png"), full_page=True)
    print(f"screenshots in {args.out}: demo_generate.png, demo_compare.png, demo_results.png")


if __name__ == "__main__":
    main()
