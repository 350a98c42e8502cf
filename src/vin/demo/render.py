"""Videos for viewing: strategies side by side, pixels enlarged, chunk boundaries marked, streamed to mp4.

Each panel has a title strip (the strategy and the chunk on screen), a frame that turns orange on the two
frames either side of a chunk boundary, and a timeline below with a tick at every boundary and the
playhead. Frames are drawn and encoded one at a time (memory of one frame, whatever the length) and the
file is written atomically. No torch and no gradio here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import VinError
from ..files import atomic_path, check_writable

TITLE = 26  # pixels of the title strip
TIMELINE = 14  # pixels of the timeline under each panel
BORDER = 3
GAP = 8
BACKGROUND = (24, 24, 27)
SEAM = (255, 140, 0)  # the border on the frames either side of a chunk boundary
TRACK, TICK, PLAYED = (70, 70, 78), (235, 235, 235), (59, 130, 246)
VIEW_SIZE = 256  # panels are enlarged to at least this many pixels across (whole multiples only)


def view_scale(width: int, target: int = VIEW_SIZE) -> int:
    """The whole-number enlargement that brings a frame `width` pixels wide to about `target`."""
    return max(1, target // max(1, width))


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the bitmap font
        return ImageFont.load_default()


def _panel(
    frame: np.ndarray, label: str, t: int, frames: int, chunk: int, scale: int, marks: bool, font
) -> Image.Image:
    """One strategy's frame `t`, enlarged, with its title, border and timeline."""
    h, w = frame.shape[0] * scale, frame.shape[1] * scale
    image = Image.new("RGB", (w + 2 * BORDER, TITLE + h + 2 * BORDER + (TIMELINE if marks else 0)), BACKGROUND)
    draw = ImageDraw.Draw(image)
    seam = marks and ((t % chunk == 0 and t > 0) or (t % chunk == chunk - 1 and t < frames - 1))
    if seam:
        draw.rectangle((0, TITLE, w + 2 * BORDER - 1, TITLE + h + 2 * BORDER - 1), fill=SEAM)
    image.paste(Image.fromarray(frame.repeat(scale, axis=0).repeat(scale, axis=1)), (BORDER, TITLE + BORDER))
    chunks = -(-frames // chunk)
    title = f"{label}  ·  chunk {t // chunk + 1}/{chunks}" if marks else label
    draw.text((BORDER + 4, 5), title, fill=TICK, font=font)
    if marks:
        top, width = TITLE + h + 2 * BORDER + 3, w + 2 * BORDER
        draw.rectangle((0, top, width - 1, top + TIMELINE - 6), fill=TRACK)
        draw.rectangle((0, top, round((t + 1) / frames * (width - 1)), top + TIMELINE - 6), fill=PLAYED)
        for b in range(chunk, frames, chunk):
            x = round(b / frames * (width - 1))
            draw.line((x, top - 2, x, top + TIMELINE - 4), fill=TICK, width=1)
    return image


def side_by_side_frames(videos: Sequence[np.ndarray], labels: Sequence[str], chunk: int, scale: int,
                        marks: bool = True) -> Iterator[np.ndarray]:  # fmt: skip
    """The frames of the side-by-side view, one (H, W, 3) uint8 array at a time (even sizes, for H.264)."""
    if not videos or len(videos) != len(labels):
        raise VinError("give one label per video, and at least one video")
    frames = len(videos[0])
    if any(v.shape != videos[0].shape or v.ndim != 4 or v.dtype != np.uint8 for v in videos):
        raise VinError("the videos side by side must all be uint8 (T, H, W, 3) arrays of one shape")
    if chunk < 1:
        raise VinError(f"chunk frames must be at least 1, got {chunk}")
    font = _font(15)
    for t in range(frames):
        panels = [_panel(v[t], label, t, frames, chunk, scale, marks, font) for v, label in zip(videos, labels)]
        pw, ph = panels[0].size
        width, height = len(panels) * pw + (len(panels) - 1) * GAP, ph
        canvas = Image.new("RGB", (width + width % 2, height + height % 2), BACKGROUND)
        for i, panel in enumerate(panels):
            canvas.paste(panel, (i * (pw + GAP), 0))
        yield np.asarray(canvas)


def write_mp4(frames: Iterator[np.ndarray], path: str | Path, fps: int = 16) -> Path:
    """Encodes frames (each (H, W, 3) uint8, all one size, even sides) to an H.264 mp4, atomically."""
    import av

    path = check_writable(path)
    with atomic_path(path) as tmp, av.open(tmp, mode="w", format="mp4") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=int(fps))
                stream.height, stream.width = frame.shape[0], frame.shape[1]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "14", "preset": "veryfast"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise VinError(f"{path}: no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_side_by_side(videos: Sequence[np.ndarray], labels: Sequence[str], chunk: int, path: str | Path,
                       fps: int = 16, scale: int | None = None, marks: bool = True) -> Path:  # fmt: skip
    """Writes the side-by-side view of `videos` (one per label) to an mp4 at `path`."""
    scale = view_scale(videos[0].shape[2]) if scale is None and len(videos) else scale or 1
    return write_mp4(side_by_side_frames(videos, labels, chunk, scale, marks), path, fps)
