"""What the demo page does, without the page: generate and measure, draw study pairs, record and tally votes.

`Demo` holds the checkpoints it serves (chosen at launch, named on the page, never shown by path), the loaded
models (the last two asked for), the feature model of the figures, the study folder and the votes file.
Every request is checked in full before any work: the page's caps (`limits.Caps`), then
`vin.generation.check_request` (the memory estimate included); every user error is a one-line `VinError`,
the message the CLI prints. Model work is serialised by one lock; a request whose page went away or was
cancelled stops at its next step (`cancelled`) and frees it. Votes and tallies never wait for it; a rater
votes once per pair, and one address at most `votes_per_minute` times a minute.
"""

from __future__ import annotations

import logging
import random
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VinError
from ..generation.options import DEFAULTS, STRATEGIES
from ..metrics.evaluate import LOWER_IS_BETTER
from .limits import Caps, VoteLimit, checkpoint_names, public
from .render import view_scale, write_side_by_side
from .study import Study, Trial
from .votes import TALLY_HEADERS, Vote, VoteStore, tally, tally_table

log = logging.getLogger("vin.demo")
Progress = Callable[[float, str], None]
Cancelled = Callable[[], bool]  # whether the request's page went away or cancelled it
NOT_SERVED = ("no checkpoint this page can load there: choose one from the list, or give a folder written by vin "
              "train")  # the one answer for a folder that is missing, is not a checkpoint or cannot be read
FIGURES = (
    "mawe",
    "scene_cuts",
    "subject_consistency",
    "background_consistency",
    "dynamic_degree",
    "temporal_flickering",
    "boundary_jump",
    "background_drift",
    "sprite_color_changes",
    "trajectory_acceleration",
)  # fmt: skip  (vin eval's table, without its flops and seconds)
HIGHER_IS_BETTER = {"subject_consistency", "background_consistency", "temporal_flickering"}
HEADERS = ["strategy", "seconds", "model calls", "FLOPs",
           *(f.replace("_", " ") + (" ↓" if f in LOWER_IS_BETTER else " ↑" if f in HIGHER_IS_BETTER else "") for f in FIGURES)]  # fmt: skip
KEEP_REQUESTS = 8  # output folders of the last requests kept on disk


@dataclass(frozen=True)
class GenerateRequest:
    """What the Generate tab asks for: one video per strategy, all from the same noise (same seed)."""

    checkpoint: str | None = None  # a name from the page's list (None or "": the first)
    frames: int = 256
    steps: int = 25
    seed: int = 0
    strategies: tuple[str, ...] = ("vin",)
    fusion_schedule: str = "early"
    fusion_fraction: float = DEFAULTS["fusion_fraction"]
    global_tokens: str = "global"
    context_frames: int | None = None  # None: the model's

    def options(self) -> dict:
        """The sampling switches as `vin.generate` options."""
        return {
            "fusion_schedule": self.fusion_schedule,
            "fusion_fraction": self.fusion_fraction,
            "global_tokens": self.global_tokens,
            "context_frames": self.context_frames,
        }


@dataclass
class GenerateResult:
    view: Path  # the strategies side by side, chunk boundaries marked (mp4)
    videos: dict[str, Path]  # each strategy's own mp4, enlarged
    rows: list[list]  # under HEADERS, one per strategy
    summary: str
    seconds: dict[str, float] = field(default_factory=dict)  # sampling wall time per strategy
    flops: dict[str, int] = field(default_factory=dict)


@dataclass
class Samples:
    """The videos of one request, before they are measured."""

    request: GenerateRequest
    model: object
    chunk: int  # frames per chunk of the decoded video
    videos: dict  # strategy -> (T, H, W, 3) uint8 array
    generations: dict  # strategy -> vin.generation.api.Generation
    view: Path
    files: dict[str, Path]
    seconds: float  # sampling and rendering, wall time

    def describe(self) -> str:
        t, h, w, _ = next(iter(self.videos.values())).shape
        n, r = len(self.videos), self.request
        return f"{n} video{'s' if n > 1 else ''} of {t} frames ({h}x{w}), {r.steps} steps, seed {r.seed}, same noise"


def whole(value, name: str):
    """A page number as an int when it is a whole number (gradio sends floats); None stays None."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, int):
        return value
    raise VinError(f"{name} must be a whole number, got {value!r}")


def temporal_factor(model) -> int:
    """Video frames per model frame: a latent-space model's autoencoder may shorten time, pixels never do."""
    return model.latent_decoder.temporal if model.latent_decoder is not None else 1


def flops_text(flops: int) -> str:
    """FLOPs with an SI prefix: 1.2 TFLOPs."""
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if flops >= scale:
            return f"{flops / scale:.3g} {prefix}FLOPs"
    return f"{flops} FLOPs"


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


class Stopped(VinError):
    """A request stopped at a step because its page went away or cancelled it (the model is free again)."""


def _stopper(cancelled: Cancelled | None) -> Callable[[], None]:
    """The hook each model call runs (`vin.diffusion.sampling.on_each_step`): raises `Stopped` once `cancelled()`."""

    def stop() -> None:
        if cancelled is not None and cancelled():
            log.warning("vin demo: a request was cancelled or its page closed; stopped at its next step")
            raise Stopped("the request was cancelled or its page closed; it stopped at its next step")

    return stop


class Demo:
    """The demo's state and actions; the gradio page (`vin.demo.app`) only calls these.

    `checkpoints`: the folders (or shipped names) it serves, the first by default; `typed_paths`: whether a
    request may name another checkpoint folder (the page on loopback only), answered with one line that does
    not say what exists; `caps`: the most one request may ask for; `votes_per_minute`: per client address."""

    def __init__(self, checkpoints: str | Path | Sequence[str | Path | None] | None, votes: VoteStore, work_dir: str | Path, *,
                 study: Study | None = None, autoencoder: str | None = None, device: str = "cpu",
                 features: str = "efficientnet-lite0", fps: int = 16, caps: Caps = Caps(), typed_paths: bool = False,
                 votes_per_minute: int = 10) -> None:  # fmt: skip
        from ..checkpoint import checkpoint_path

        given = checkpoints if isinstance(checkpoints, (list, tuple)) else [checkpoints]
        self.checkpoints = checkpoint_names([checkpoint_path(c) for c in given or [None]])  # name -> folder
        self.checkpoint = next(iter(self.checkpoints.values()))  # the default: the first given
        self.votes, self.work_dir = votes, Path(work_dir)
        self.study: Study | None = study  # the Compare tab's videos (set once the model is known)
        self.autoencoder, self.device, self.features, self.fps = autoencoder, device, features, fps
        self.caps, self.typed_paths, self.vote_limit = caps.check(), typed_paths, VoteLimit(votes_per_minute)
        self._models: dict[str, object] = {}
        self._extractor = None
        self._model_lock = threading.RLock()  # model work, one request at a time
        self._vote_lock = threading.Lock()  # the rate check, the vote and its count, together
        self.work_dir.mkdir(parents=True, exist_ok=True)

    @property
    def names(self) -> list[str]:
        """The checkpoints' names, as the page lists them (the default first)."""
        return list(self.checkpoints)

    def public(self, text: str) -> str:
        """`text` for the page: the served folders by their names, any other absolute path cut to its last part."""
        known = [(path, name) for name, path in self.checkpoints.items()] + [(self.work_dir, "")]
        known += [(self.votes.path, self.votes.path.name)] + ([(self.study.folder, self.study.folder.name)] if self.study else [])
        return public(text, known)

    def model(self, checkpoint: str | Path | None = None):
        """The loaded model of `checkpoint` (a name from the list; None or "": the first), kept for the next request."""
        from ..checkpoint import load_model

        path = self._path_of(checkpoint)
        key = str(path)
        with self._model_lock:
            if key not in self._models:
                autoencoder = self.autoencoder if path == self.checkpoint else None
                try:
                    model = load_model(path, self.device, autoencoder)
                except Exception:  # a typed folder: one answer for every way it can fail (what exists stays unsaid)
                    if path in self.checkpoints.values():
                        raise
                    raise VinError(NOT_SERVED) from None
                if len(self._models) >= 2:
                    self._models.pop(next(iter(self._models)))
                self._models[key] = model
            return self._models[key]

    def extractor(self):
        """The feature model of the consistency figures (loaded once)."""
        if self._extractor is None:
            from ..metrics.features import FeatureExtractor

            self._extractor = FeatureExtractor(self.features)
        return self._extractor

    def check(self, request: GenerateRequest):
        """Every check of `request` before any work; returns (model, chunk frames of the decoded video)."""
        from ..generation.api import check_request
        from ..generation.options import make_options

        strategies = tuple(request.strategies)
        if not strategies:
            raise VinError("choose at least one strategy")
        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown:
            raise VinError(f"unknown strategy {unknown[0]!r}: choose from {', '.join(STRATEGIES)}")
        self.caps.refuse(request.frames, request.steps, len(strategies))
        model = self.model(request.checkpoint)
        plans = [check_request(model, s, make_options(request.frames, request.steps, request.seed, **self._options(request)))
                 for s in strategies]  # fmt: skip
        return model, plans[0].chunk_frames * temporal_factor(model)

    def generate(self, request: GenerateRequest, progress: Progress | None = None,
                 cancelled: Cancelled | None = None) -> GenerateResult:  # fmt: skip
        """Samples, renders and measures every strategy of `request` (checked in full first)."""
        return self.measure(self.sample(request, progress, cancelled), progress, cancelled)

    def sample(self, request: GenerateRequest, progress: Progress | None = None, cancelled: Cancelled | None = None) -> Samples:
        """Every strategy's video from the same seed, and the side-by-side view (the first thing the page shows).
        Once `cancelled()` says so, the sampling stops at its next step (`Stopped`) and the model is free."""
        from ..diffusion.sampling import on_each_step
        from ..generation.api import generate

        report = progress or (lambda fraction, text: None)
        started, n = time.perf_counter(), len(request.strategies)
        with self._model_lock, on_each_step(_stopper(cancelled)):
            model, chunk = self.check(request)
            generations = {}
            for i, strategy in enumerate(request.strategies):
                report(0.7 * i / n, f"{strategy}: sampling ({i + 1} of {n})")
                generations[strategy] = generate(model, request.frames, request.steps, request.seed, strategy,
                                                 progress=True, **self._options(request))  # fmt: skip
        report(0.7, "writing the videos")
        videos = {s: g.video.numpy() for s, g in generations.items()}
        view, files = self._render(videos, chunk)
        return Samples(request, model, chunk, videos, generations, view, files, time.perf_counter() - started)

    def measure(self, samples: Samples, progress: Progress | None = None, cancelled: Cancelled | None = None) -> GenerateResult:
        """FLOPs (counted as `vin eval` counts them: one step, times the steps) and the `vin eval` figures of each video;
        stopped (`Stopped`) between videos, or in the FLOPs' model call, once `cancelled()` says so."""
        from ..diffusion.sampling import on_each_step
        from ..metrics.evaluate import evaluate_video
        from ..metrics.suite import generation_flops, training_data_config

        report, stop = progress or (lambda fraction, text: None), _stopper(cancelled)
        request, started, n = samples.request, time.perf_counter(), len(samples.videos)
        procedural = training_data_config(self._path_of(request.checkpoint)) is not None
        rows, flops = [], {}
        for i, (strategy, video) in enumerate(samples.videos.items()):
            stop()
            report(0.7 + 0.3 * i / n, f"{strategy}: FLOPs and figures ({i + 1} of {n})")
            gen = samples.generations[strategy]
            with self._model_lock, on_each_step(stop):
                flops[strategy] = request.steps * generation_flops(samples.model, strategy, request.frames, 1, request.seed,
                                                                   **self._options(request))  # fmt: skip
            m = evaluate_video(video, self.extractor(), samples.chunk, video=strategy, strategy=strategy, seed=request.seed,
                               fps=float(self.fps), procedural=procedural, flops=flops[strategy], seconds=gen.seconds,
                               model_calls=gen.model_calls)  # fmt: skip
            rows.append([strategy, f"{gen.seconds:.3g}", str(gen.model_calls), flops_text(flops[strategy]),
                         *(_cell(getattr(m, f)) for f in FIGURES)])  # fmt: skip
        seconds = {s: g.seconds for s, g in samples.generations.items()}
        summary = (
            samples.describe() + "; " + "; ".join(f"{s}: {seconds[s]:.3g} s, {flops_text(flops[s])}" for s in seconds)
        )
        summary += f"; {samples.seconds + time.perf_counter() - started:.1f} s in all, with figures and encoding"
        return GenerateResult(samples.view, samples.files, rows, summary, seconds, flops)

    def _options(self, request: GenerateRequest) -> dict:
        """The request's `vin.generate` options, bounded by the page's cap on steps (vin demo --max-steps)."""
        return {**request.options(), "max_steps": self.caps.steps}

    def _render(self, videos: dict, chunk: int) -> tuple[Path, dict[str, Path]]:
        """The side-by-side view (chunk boundaries marked) and each strategy's own mp4, in a fresh folder."""
        out, names = self._new_folder(), list(videos)
        view = write_side_by_side([videos[s] for s in names], names, chunk, out / "side_by_side.mp4", self.fps)
        scale = view_scale(videos[names[0]].shape[2])
        files = {s: write_side_by_side([videos[s]], [s], chunk, out / f"{s}.mp4", self.fps, scale, marks=False)
                 for s in names}  # fmt: skip
        return view, files

    def _path_of(self, checkpoint: str | Path | None) -> Path:
        """The folder of a checkpoint as the page names it: a name from the list (None or "": the first), or, where
        typed paths are allowed, a folder (a shipped name, `~` for the server user's home; `~user` is not expanded)."""
        from ..checkpoint import SHIPPED, default_checkpoint

        if isinstance(checkpoint, Path) and checkpoint.resolve() in self.checkpoints.values():
            return checkpoint.resolve()  # the code's own reference to a served folder (the page sends names)
        name = "" if checkpoint is None else str(checkpoint).strip()
        if name == "":
            return self.checkpoint
        if name in self.checkpoints:
            return self.checkpoints[name]
        if not self.typed_paths:
            raise VinError(f"that checkpoint is not served here: choose one of {', '.join(self.checkpoints)}")
        if name in SHIPPED:
            return default_checkpoint(name)
        return Path.home() / name[2:] if name == "~" or name.startswith("~/") else Path(name)

    def _new_folder(self) -> Path:
        """A fresh output folder; the oldest beyond the last KEEP_REQUESTS are removed."""
        folders = sorted((p for p in self.work_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in folders[: max(0, len(folders) - KEEP_REQUESTS + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        out = self.work_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        out.mkdir()
        return out

    def _study(self) -> Study:
        if self.study is None:
            raise VinError("this demo has no study folder: start it with vin demo --study DIR")
        return self.study

    def trial(self, rng: random.Random, rater: str | None = None, cancelled: Cancelled | None = None) -> tuple[Trial, Path, Path]:
        """A pair to rate (least-voted pairs first, none `rater` voted on) and its two videos, made now if the study
        lacks them (stopped at a step once `cancelled()` says so)."""
        from ..diffusion.sampling import on_each_step

        study = self._study()
        mine = [v for v in self.votes.votes() if study.same(v)]
        counts = Counter(tuple(sorted((v.left, v.right))) for v in mine)
        trial = study.draw(rng, counts, {(tuple(sorted((v.left, v.right))), v.seed) for v in mine if v.rater == rater})
        missing = [s for s in (trial.left, trial.right) if not study.path(s, trial.seed).is_file()]
        if missing:
            with self._model_lock, on_each_step(_stopper(cancelled)):
                model = self.model(study.checkpoint)
                for strategy in missing:
                    study.ensure(model, strategy, trial.seed)
        return trial, study.path(trial.left, trial.seed), study.path(trial.right, trial.seed)

    def vote(self, trial: Trial | None, consistency: str | None, quality: str | None, rater: str,
             address: str = "") -> int:  # fmt: skip
        """Records one vote on the pair on screen (committed before returning); returns its row id. Refused: a
        rater's second vote on the pair, and a vote past the limit of votes a minute from `address`."""
        if trial is None:
            raise VinError("no pair of videos on screen yet: press 'Next pair' first")
        s = self._study()
        vote = Vote(rater, str(s.checkpoint), s.frames, s.steps, trial.seed, trial.left, trial.right,
                    consistency or "", quality or "").check()  # fmt: skip
        with self._vote_lock:
            self.vote_limit.check(address)
            row = self.votes.record(vote)
            self.vote_limit.count(address)
        return row

    def results(self) -> tuple[str, list[list]]:
        """A line on what was counted, and the tally rows (under `TALLY_HEADERS`) of this study's votes."""
        study, votes = self._study(), self.votes.votes()
        mine = [v for v in votes if study.same(v)]
        raters = len({v.rater for v in mine})
        note = (f"{len(mine)} vote{'s' if len(mine) != 1 else ''} on this study ({study.frames} frames, {study.steps} "
                f"steps) from {raters} rater{'s' if raters != 1 else ''}, in {self.votes.path.name}")  # fmt: skip
        if len(votes) > len(mine):
            note += f"; {len(votes) - len(mine)} votes of other studies in the file are left out"
        return note + ". Win rates leave out 'no preference'; 95% Wilson intervals.", tally_table(
            tally(mine, study.strategies)
        )


__all__ = [
    "HEADERS",
    "TALLY_HEADERS",
    "Demo",
    "Stopped",
    "GenerateRequest",
    "GenerateResult",
    "Samples",
    "temporal_factor",
    "whole",
]
