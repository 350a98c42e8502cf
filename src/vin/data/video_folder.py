"""Training clips from a folder tree of video files, read with PyAV.

Every file under `root` ending in .mp4 / .webm / .avi / .mov / .mkv is probed once (opened, its
first frame decoded, its length read); files that fail, files too short for the longest clip, and
names that are no file to read (a symlink loop or a broken link, a folder) are skipped with a warning
and listed in `report()`, with hidden ones, links to folders (not followed) and other files by suffix. A file that breaks later, while a clip is read
from it (a truncated file, a corrupt packet), is skipped from then on and another clip is drawn in
its place: training never stops on one file.

A clip is `frames` frames taken every `frame_stride` source frames (or resampled to `fps`), each
resized (area filter) to the smallest size that covers `height` x `width` with its aspect kept, and cropped
to height x width (centre or random): 832x480 from a 16:9 video loses a strip of each side, a square
frame its long side's excess.

Determinism: each clip of a batch gets its own seed from the batch's generator, and every draw of a
clip (the file, the start, the crop, the redraws after a bad file) comes from that seed. So the
generator's state is the whole data position, a bad file costs the same draws whether or not it was
already known to be bad (exact resume), and DDP ranks stay in step while each decodes only its share.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..errors import VinError
from .cache import ShardCache, file_key, write_json_atomic

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mov", ".mkv")
MAX_DRAWS = 1000  # redraws for one clip before giving up (every draw hit a bad or too short file)
HOLD_TOLERANCE = 2  # frames a stream may end early (metadata often over-counts by one or two)
CACHE_MAX_BYTES = 2**31  # a longer video (decoded at the training size) is not cached: its clips are decoded as drawn
logger = logging.getLogger("vin.data")


class BadVideo(Exception):
    """A video file that cannot be used; the message says why."""


@dataclass
class VideoInfo:
    path: Path
    name: str  # path relative to root, with / separators
    frames: int  # source frames (from the container's metadata, else counted)
    fps: float
    width: int
    height: int


@dataclass
class ClipSpec:
    """Where one clip comes from: a video, its source frame indices (T,), and a crop offset in [0, 1]^2."""

    video: int
    indices: np.ndarray
    crop: tuple[float, float]


@dataclass
class Scan:
    """What is under a data root: the video files to probe, and every other file and why it is left out."""

    files: list[Path]  # sorted
    unusable: dict[str, str]  # a video name that is no file to read (a symlink loop, a broken link, a folder) -> why
    ignored: dict[str, str]  # hidden video files, and links to folders (not followed) -> why
    other: dict[str, int]  # files of other kinds: suffix -> how many


def scan(root: Path) -> Scan:
    """Video files under `root`, sorted, and what was left out and why (names relative to `root`)."""
    found = Scan([], {}, {}, {})
    for path in root.rglob("*"):
        name = path.relative_to(root).as_posix()
        video = path.suffix.lower() in VIDEO_SUFFIXES
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            if video:
                found.ignored[name] = "hidden (a name starting with '.')"
        elif video and path.is_file():
            found.files.append(path)
        elif video:
            found.unusable[name] = _not_a_file(path)
        elif path.is_symlink() and path.is_dir():
            found.ignored[name + "/"] = "a link to a folder, not followed"
        elif path.is_file():
            suffix = path.suffix.lower() or "(no suffix)"
            found.other[suffix] = found.other.get(suffix, 0) + 1
    found.files.sort()
    return found


def _not_a_file(path: Path) -> str:
    """Why a name with a video suffix is no file to read."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # Python 3.11 reports a loop so; 3.13 as an OSError
            return "a symlink loop"
        except OSError as err:
            return "a symlink loop" if err.errno == 40 else "a broken link (its target does not exist)"
    return "a folder" if path.is_dir() else "not a regular file"


def _frame_rate(stream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return None


def probe(path: Path) -> tuple[int, float, int, int]:
    """(frames, fps, width, height) of a video file; raises BadVideo if it is not a usable video."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BadVideo("no video stream")
            stream = container.streams.video[0]
            rate = _frame_rate(stream)
            if rate is None:
                raise BadVideo("no frame rate in the file")
            frames = stream.frames
            if frames <= 0 and stream.duration and stream.time_base:
                frames = int(stream.duration * stream.time_base * rate)
            if frames <= 0 and container.duration:
                frames = int(container.duration / av.time_base * rate)
            first = next(container.decode(stream), None)  # not a video after all? this fails
            if first is None:
                raise BadVideo("no decodable frames")
            if frames <= 0:
                frames = 1 + sum(1 for _ in container.decode(stream))
            return frames, float(rate), first.width, first.height
    except BadVideo:
        raise
    except Exception as err:  # PyAV raises many error types on bad input; each means "unusable"
        raise BadVideo(_reason(err)) from None


def _reason(err: Exception) -> str:
    """One line: the error's kind and FFmpeg's words, without its errno and the path (the report names the file)."""
    text = getattr(err, "strerror", None) or (str(err).strip().splitlines()[0] if str(err).strip() else "")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def covering(source: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) a (height, width) `source` frame is resized to: the smallest of its aspect that covers `size`.
    A square `size` resizes the short side to it."""
    (sh, sw), (h, w) = source, size
    scale = max(h / sh, w / sw)
    return max(h, round(sh * scale)), max(w, round(sw * scale))


def _resized(frame, size: tuple[int, int]) -> np.ndarray:
    """A PyAV frame -> (H, W, 3) uint8 covering `size` (height, width), its aspect kept."""
    nh, nw = covering((frame.height, frame.width), size)
    return frame.reformat(width=nw, height=nh, format="rgb24", interpolation="AREA").to_ndarray()


def decode_frames(path: Path, indices: np.ndarray, size: tuple[int, int], partial: bool = False) -> np.ndarray:
    """Source frames `indices` (non-decreasing) of a video, resized to cover `size` (height, width): (T, H, W, 3) uint8.

    Seeks to the keyframe before the first frame wanted and decodes on. A frame's index is its time
    times the frame rate; a wanted index without its own frame (variable frame rate) holds the frame
    before it. Raises BadVideo when the stream ends early (a truncated file) or does not decode, or
    with `partial`, returns the frames up to there (at least one): what a cache keeps of a truncated file.
    """
    import av

    wanted = np.asarray(indices, dtype=np.int64)
    out: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            _decode_into(container, wanted, size, out)
    except Exception as err:
        reason = str(err) if isinstance(err, BadVideo) else _reason(err)
        got = 0
        while got < len(wanted) and int(wanted[got]) in out:
            got += 1
        if not partial or got == 0:
            raise BadVideo(reason) from None
        return np.stack([out[int(i)] for i in wanted[:got]])
    return np.stack([out[int(i)] for i in wanted])


def _decode_into(container, wanted: np.ndarray, size: tuple[int, int], out: dict[int, np.ndarray]) -> None:
    """Fills `out[i]` for every index in `wanted` from the container's first video stream (see `decode_frames`).
    Raises BadVideo when the stream ends early; what was filled by then stays in `out`, for a partial read.
    A decoded frame is resized once, when first used (a held frame fills several indices)."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate, tb = _frame_rate(stream), stream.time_base
    t0 = stream.start_time or 0
    seekable = tb is not None and rate is not None
    first = int(wanted[0])
    if first > 0 and seekable:
        container.seek(t0 + int(first / rate / tb), stream=stream, backward=True, any_frame=False)
    pending = sorted(set(wanted.tolist()))
    j = 0  # pending[j]: the next index to fill
    held = None  # (index, count, frame): the last frame decoded, resized when first used
    resized: dict[int, np.ndarray] = {}

    def take(item) -> np.ndarray:
        if item[1] not in resized:
            resized.clear()
            resized[item[1]] = _resized(item[2], size)
        return resized[item[1]]

    for count, frame in enumerate(container.decode(stream)):
        if frame.pts is None and first > 0 and seekable:
            raise BadVideo("frames without timestamps cannot be sought")
        index = round((frame.pts - t0) * tb * rate) if (frame.pts is not None and seekable) else count
        while j < len(pending) and held is not None and pending[j] < index:
            out[pending[j]] = take(held)  # no frame of its own (variable frame rate): hold
            j += 1
        if j == len(pending):
            break
        held = (index, count, frame)
        if index >= pending[j]:  # this frame, or the first after an imprecise seek
            out[pending[j]] = take(held)
            j += 1
            if j == len(pending):
                break
    while j < len(pending) and held is not None and pending[j] - held[0] <= HOLD_TOLERANCE:
        out[pending[j]] = take(held)  # metadata counted a frame or two more than the stream holds
        j += 1
    if j < len(pending):
        raise BadVideo(f"the stream ends before frame {pending[j]} (truncated file?)")


class VideoFolder:
    """Clips of a folder of videos as (B, 3, T, height, width) in [-1, 1] (`config.height` x `config.width`), with
    their conditions.

    `max_frames`: the longest clip training asks for; videos too short for it are skipped.
    `cache`: decoded videos are kept there (every frame, resized to cover the frame size), so a video is
    decoded once; clips are then cut from the memory-mapped shard.
    """

    def __init__(
        self, config, max_frames: int, cache: ShardCache | None = None, text_dim: int = 0, text_tokens: bool = False
    ) -> None:
        """`text_tokens`: a caption is the sequence of its token embeddings (L, text_dim), as a Wan backbone's
        cross-attention reads it (captions are zero-padded to the longest, as Wan's pipeline pads its prompts);
        otherwise their mean (text_dim,)."""
        self.config = config
        self.text_tokens = text_tokens
        self.null_caption: torch.Tensor | None = None  # text_tokens: the empty prompt's embedding (L, D), from the key ""
        self.root = Path(config.root).expanduser()
        self.size = (config.height, config.width)
        self.max_frames = max_frames
        self.cache = cache
        if not config.root or not self.root.is_dir():
            raise VinError(f"data.root={config.root!r} is not a folder; point it at a folder of video files (data.source=folder)")
        if config.frame_stride < 1:
            raise VinError(f"data.frame_stride must be at least 1, got {config.frame_stride}")
        if config.fps < 0:
            raise VinError(f"data.fps must be 0 (use data.frame_stride) or positive, got {config.fps}")
        if config.crop not in ("center", "random"):
            raise VinError(f"data.crop must be center or random, got {config.crop!r}")
        if config.labels not in ("none", "folders"):
            raise VinError(f"data.labels must be none or folders, got {config.labels!r}")
        found = scan(self.root)
        files, self.ignored, self.other_files = found.files, found.ignored, found.other
        if not files:
            raise VinError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) under {self.root}" +
                           "".join(f"; {name}: {why}" for name, why in list(found.unusable.items())[:3]))  # fmt: skip
        self.skipped: dict[str, str] = {}  # name -> why; found while scanning
        for name, why in found.unusable.items():
            self._skip(name, why)
        self.broken: dict[str, str] = {}  # name -> why; found while training
        self._lock = threading.Lock()
        self.videos = self._index(files)
        self.classes = sorted({v.name.split("/")[0] for v in self.videos}) if config.labels == "folders" else []
        from .captions import is_text_captions

        self.captions = self._captions(text_dim) if config.captions and not is_text_captions(config.captions) else None
        self.text_captions = None  # (names -> text, CaptionCache, tokens): captions given as text (`use_text_captions`)
        if not self.videos:
            reasons = "; ".join(f"{k}: {v}" for k, v in list(self.skipped.items())[:5])
            raise VinError(f"none of the {len(files)} video files under {self.root} is usable ({reasons})")
        self._bad: set[int] = set()
        self._pool = ThreadPoolExecutor(config.workers) if config.workers > 0 else None

    # ----------------------------------------------------------------------------------------------
    def _index(self, files: list[Path]) -> list[VideoInfo]:
        """Probes every file (in parallel with data.workers threads), reusing cache_dir/index.json."""
        known = self._load_index()
        keys = [file_key(f, "probe") for f in files]

        def one(item: tuple[Path, str]) -> dict:
            path, key = item
            if key in known:
                return known[key]
            try:
                frames, fps, width, height = probe(path)
                return {"frames": frames, "fps": fps, "width": width, "height": height}
            except BadVideo as err:
                return {"error": str(err)}

        workers = max(1, self.config.workers)
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one, zip(files, keys)))
        if self.cache is not None:
            write_json_atomic(self.cache.root / "index.json", dict(zip(keys, results)))
        videos = []
        for path, meta in zip(files, results):
            name = path.relative_to(self.root).as_posix()
            if "error" in meta:
                self._skip(name, meta["error"])
                continue
            needed = self.span(self.max_frames, meta["fps"])
            if meta["frames"] < needed:
                self._skip(name, f"too short: {meta['frames']} frames, the longest clip needs {needed}")
                continue
            if self.config.labels == "folders" and "/" not in name:
                self._skip(name, "not inside a class folder (data.labels=folders)")
                continue
            videos.append(VideoInfo(path, name, meta["frames"], meta["fps"], meta["width"], meta["height"]))
        return videos

    def _load_index(self) -> dict:
        if self.cache is None:
            return {}
        import json

        try:
            return json.loads((self.cache.root / "index.json").read_text())
        except (OSError, ValueError):
            return {}

    def _skip(self, name: str, reason: str) -> None:
        self.skipped[name] = reason
        logger.warning("skipping video %s: %s", name, reason)

    def _captions(self, text_dim: int) -> torch.Tensor:
        """One embedding per video: (V, text_dim) with NaN rows for videos without a caption (the null condition),
        or with `text_tokens` (V, L, text_dim), where a video without a caption gets the empty prompt's."""
        from ..weights import read_safetensors

        path = Path(self.config.captions).expanduser()
        if not path.is_file():
            raise VinError(f"data.captions={self.config.captions!r} does not exist; give a .safetensors of embeddings keyed by video path relative to data.root")  # fmt: skip
        if text_dim <= 0:
            raise VinError("data.captions needs a text-conditioned model: set model.text_dim to the embeddings' size")
        table = read_safetensors(path, f"data.captions={path}")
        for name, emb in table.items():
            bad = int((~torch.isfinite(emb)).sum()) if emb.is_floating_point() else 0
            if bad:
                raise VinError(f"data.captions: the embedding of {name or 'the empty prompt'} has NaN or Inf in {bad} of "
                               f"{emb.numel()} values; recompute it (in float32) or drop it from {path.name}")  # fmt: skip
            if emb.shape[-1] != text_dim:
                raise VinError(f"data.captions: the embedding of {name or 'the empty prompt'} has size {emb.shape[-1]}, model.text_dim is {text_dim}")  # fmt: skip
            if self.text_tokens and emb.ndim != 2:
                raise VinError(f"data.captions: the embedding of {name or 'the empty prompt'} is {tuple(emb.shape)}; a wan "
                               "backbone reads each caption's token embeddings (L, text_dim), as its text encoder gives them")  # fmt: skip
        if self.text_tokens:
            return self._token_captions(table, path)
        out = torch.full((len(self.videos), text_dim), float("nan"))
        for i, video in enumerate(self.videos):
            emb = table.get(video.name)
            if emb is not None:
                out[i] = emb.float().reshape(-1, emb.shape[-1]).mean(0)  # (D,) or (L, D) -> (D,): token embeddings are mean-pooled
        missing = int(torch.isnan(out[:, 0]).sum())
        if missing:
            logger.warning("%d of %d videos have no caption in %s; they train with the null condition", missing, len(self.videos), path)  # fmt: skip
        return out

    def _token_captions(self, table: dict[str, torch.Tensor], path: Path) -> torch.Tensor:
        """(V, L, D) token embeddings zero-padded to the longest L; the key "" (the empty prompt) is the null caption."""
        length = max(e.shape[0] for e in table.values())
        padded = {k: torch.nn.functional.pad(e.float(), (0, 0, 0, length - e.shape[0])) for k, e in table.items()}
        self.null_caption = padded.get("")
        missing = [v.name for v in self.videos if v.name not in padded]
        if missing and self.null_caption is None:
            raise VinError(f"data.captions={path}: {len(missing)} videos have no caption (e.g. {missing[0]}) and there is no "
                           "entry '' (the empty prompt's embedding) for them to train with; add it")  # fmt: skip
        if missing:
            logger.warning("%d of %d videos have no caption in %s; they train with the empty prompt", len(missing), len(self.videos), path)  # fmt: skip
        return torch.stack([padded.get(v.name, self.null_caption) for v in self.videos])

    # ----------------------------------------------------------------------------------------------
    def step(self, fps: float) -> float:
        """Source frames between two clip frames."""
        return fps / self.config.fps if self.config.fps > 0 else float(self.config.frame_stride)

    def span(self, frames: int, fps: float) -> int:
        """Source frames a clip of `frames` frames covers."""
        return int(np.floor((frames - 1) * self.step(fps) + 1e-6)) + 1

    def spec(self, video: int, frames: int, rng: np.random.Generator) -> ClipSpec:
        info = self.videos[video]
        start = int(rng.integers(0, info.frames - self.span(frames, info.fps) + 1))
        indices = start + np.floor(np.arange(frames) * self.step(info.fps) + 1e-6).astype(np.int64)
        return ClipSpec(video, indices, (float(rng.random()), float(rng.random())))

    def sample(self, seed: int, frames: int, read=None) -> tuple[ClipSpec, np.ndarray]:
        """One clip from its own seed: (spec, read(spec)); `read` defaults to `self.read` (pixels).

        A video that fails to read is reported, marked bad, and another clip is drawn from the same seed.
        """
        read = read or self.read
        rng = np.random.default_rng(seed)
        for _ in range(MAX_DRAWS):
            video = int(rng.integers(len(self.videos)))
            spec = self.spec(video, frames, rng)  # drawn even for a bad video: the same draws either way
            if video in self._bad:
                continue
            try:
                return spec, read(spec)
            except BadVideo as err:
                self.mark_bad(video, str(err))
        raise VinError(f"no readable video left under {self.root} after {MAX_DRAWS} draws; see the warnings above")

    def mark_bad(self, video: int, reason: str) -> None:
        with self._lock:
            if video in self._bad:
                return
            self._bad.add(video)
            name = self.videos[video].name
            self.broken[name] = reason
        logger.warning("skipping video %s from now on: %s", name, reason)

    def frames(self, video: int) -> np.ndarray:
        """Every frame of a video, resized to cover the frame size: (N, H, W, 3) uint8, from the cache when it has it.

        A truncated video gives the frames it has (N is then less than its length): clips within them
        are read as without the cache, clips past them fail as they would without it.
        """
        info = self.videos[video]
        key = file_key(info.path, f"frames-{self.size_key}")
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is None:
            cached = decode_frames(info.path, np.arange(info.frames), self.size, partial=True)
            if self.cache is not None:
                self.cache.put(key, cached)
        return cached

    @property
    def size_key(self) -> str:
        """The frame size in cache keys: `32` for a square 32x32 (as before non-square sizes), else `480x832`."""
        h, w = self.size
        return str(h) if h == w else f"{h}x{w}"

    def cacheable(self, video: int) -> bool:
        """Whether a video fits the cache (a whole decoded video is held in memory once, then written)."""
        info = self.videos[video]
        h, w = covering((max(1, info.height), max(1, info.width)), self.size)
        return self.cache is not None and info.frames * h * w * 3 <= CACHE_MAX_BYTES

    def read(self, spec: ClipSpec) -> np.ndarray:
        """A clip's frames, cropped: (T, height, width, 3) uint8."""
        if self.cacheable(spec.video):
            frames = self.frames(spec.video)
            if spec.indices[-1] >= len(frames):
                raise BadVideo(f"the stream ends before frame {len(frames)} (truncated file?)")
            frames = frames[spec.indices]
        else:
            frames = decode_frames(self.videos[spec.video].path, spec.indices, self.size)
        return self.crop(frames, spec.crop)

    def crop(self, frames: np.ndarray, offset: tuple[float, float]) -> np.ndarray:
        """(T, H, W, ...) -> (T, height, width, ...): centred, or at `offset` (fractions of the slack) with crop=random."""
        (h, w), (ch, cw) = frames.shape[1:3], self.size
        fy, fx = offset if self.config.crop == "random" else (0.5, 0.5)
        y, x = round(fy * (h - ch)), round(fx * (w - cw))
        return np.ascontiguousarray(frames[:, y : y + ch, x : x + cw])

    def use_text_captions(self, table: dict[str, str], cache, length: int) -> None:
        """Captions given as text, encoded in `cache` (`vin.data.captions.CaptionCache`): each batch reads its own from
        disk, `length` tokens (zero-padded); uncaptioned videos, and the null caption, are the empty prompt."""
        unknown = sorted(set(table) - {v.name for v in self.videos})
        if unknown:
            logger.warning("%d captions name no usable video under %s (e.g. %s): they are not used", len(unknown), self.root, unknown[0])
        missing = sum(v.name not in table for v in self.videos)
        if missing:
            logger.warning("%d of %d videos have no caption: they train with the empty prompt", missing, len(self.videos))
        self.text_captions = (table, cache, length)
        self.null_caption = cache.load("", length)

    def condition(self, videos: list[int]) -> torch.Tensor | None:
        """Class ids (B,) with data.labels=folders, text embeddings (B, D) or (B, L, D) with captions, else None."""
        if self.text_captions is not None:
            table, cache, length = self.text_captions
            return torch.stack([cache.load(table.get(self.videos[v].name, ""), length) for v in videos])
        if self.captions is not None:
            return self.captions[videos]
        if self.classes:
            return torch.tensor([self.classes.index(self.videos[v].name.split("/")[0]) for v in videos])
        return None

    def batch(
        self, generator: torch.Generator, batch: int, frames: int, shard: slice = slice(None)
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`batch` clips drawn with `generator`: (B, 3, T, height, width) in [-1, 1], condition (B, ...) or None.

        `shard` reads only part of the batch (a rank's share); the draws are the same.
        """
        seeds = torch.randint(0, 2**62, (batch,), generator=generator).tolist()[shard]
        mapper = self._pool.map if self._pool is not None else map
        results = list(mapper(lambda s: self.sample(s, frames), seeds))
        clips = torch.from_numpy(np.stack([r[1] for r in results]))  # (B, T, H, W, 3) uint8
        return clips.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0, self.condition([r[0].video for r in results])

    def report(self) -> dict:
        """What was used and what was skipped, and why."""
        out = {"root": str(self.root), "videos": len(self.videos) + len(self.skipped), "usable": len(self.videos) - len(self.broken),
               "skipped": len(self.skipped) + len(self.broken), "skipped_files": {**self.skipped, **self.broken},
               "ignored_files": self.ignored, "other_files": self.other_files}  # fmt: skip
        if self.classes:
            out["classes"] = self.classes
        if self.cache is not None:
            out["cache"] = {"dir": str(self.cache.root), "hits": self.cache.hits, "misses": self.cache.misses}
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
