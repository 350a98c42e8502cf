"""`vin demo`: checks everything before the page starts, then serves it (or, with --prepare, makes the study's videos).

Order: the address can be listened on, gradio is installed (serving only), the page's caps are whole
numbers, every checkpoint's config.json reads and the first checkpoint loads, the votes file opens (and is
not inside the study folder, which is served), the study's requests and folder check out. Each failure is
one line (`VinError`). The page takes typed checkpoint folders only when it listens on loopback.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import VinError
from .limits import Caps

INSTALL = 'vin demo needs gradio, an optional extra: pip install -e ".[demo]" (in a clone of vin) or pip install gradio'


@dataclass(frozen=True)
class DemoSettings:
    """What `vin demo` was asked for (the CLI's flags)."""

    checkpoints: Sequence[str] = ()  # served by the page, picked from a list; the first is the default (none: default)
    autoencoder: str | None = None  # the first checkpoint's, if it moved since training
    host: str = "127.0.0.1"
    port: int = 7860
    votes: str = "vin-votes.sqlite"
    study: str = "vin-study"
    study_strategies: Sequence[str] = ("vin", "autoregressive")
    study_seeds: Sequence[int] = (0, 1, 2, 3)
    study_frames: int | None = None  # None: 16 chunks of the model's
    study_steps: int = 25
    features: str = "efficientnet-lite0"
    device: str = "cpu"
    prepare: bool = False
    pair_seed: int | None = None  # fixes the draw of study pairs (tests)
    caps: Caps = Caps()  # the most one request may ask for (--max-frames, --max-steps, --max-strategies)
    votes_per_minute: int = 10  # from one client address


def check_address(host: str, port: int) -> None:
    """Fails, in one line, when nothing can listen on host:port (a port in use, an address not of this machine)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as err:
        raise VinError(f"cannot listen on {host}:{port} ({err.strerror or err}); choose another --port "
                       "(or --host, an address of this machine)") from None  # fmt: skip


def is_local(host: str) -> bool:
    """Whether `host` is reachable from this machine only (a loopback address, or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_gradio():
    """The gradio module, or the one-line error that says how to install it."""
    try:
        import gradio
    except ImportError:
        raise VinError(INSTALL) from None
    return gradio


def open_demo(settings: DemoSettings):
    """The checked `Demo` (model loaded, votes file open, study folder checked) and the Generate tab's frames."""
    from ..checkpoint import checkpoint_path, read_config_json
    from .core import Demo, temporal_factor
    from .study import Study
    from .votes import VoteStore

    caps = settings.caps.check()
    for checkpoint in settings.checkpoints[1:]:  # the first is loaded below; the others when the page asks
        read_config_json(checkpoint_path(checkpoint))
    _check_votes_outside(Path(settings.votes), Path(settings.study))
    votes = VoteStore(settings.votes)
    work = Path(tempfile.mkdtemp(prefix="vin-demo-"))
    atexit.register(shutil.rmtree, work, True)
    demo = Demo(list(settings.checkpoints) or None, votes, work, autoencoder=settings.autoencoder, device=settings.device,
                features=settings.features, caps=caps, typed_paths=is_local(settings.host),
                votes_per_minute=settings.votes_per_minute)  # fmt: skip
    model = demo.model()
    chunk = model.config.chunk_frames * temporal_factor(model)
    if caps.frames < chunk:
        raise VinError(f"--max-frames {caps.frames} is less than one chunk of {demo.names[0]} ({chunk} frames)")
    frames = settings.study_frames if settings.study_frames is not None else 16 * chunk
    demo.study = Study(settings.study, demo.checkpoint, frames, settings.study_steps, settings.study_strategies,
                       settings.study_seeds, max_steps=caps.steps).open(model)  # fmt: skip
    return demo, min(16, caps.frames // chunk) * chunk


def _check_votes_outside(votes: Path, study: Path) -> None:
    """The votes file (rater ids, every answer) must not sit in the study folder, whose files the page serves."""
    if votes.expanduser().resolve().is_relative_to(study.expanduser().resolve()):
        raise VinError(f"the votes file {votes} is inside the study folder {study}, whose files the page serves; "
                       "keep --votes outside --study")  # fmt: skip


def run_demo(settings: DemoSettings, echo: Callable[[str], None] = print) -> None:
    """`vin demo`: prepares the study's videos and returns (--prepare), or serves the page until stopped."""
    if not settings.prepare:
        check_address(settings.host, settings.port)
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry: the page calls no one
        require_gradio()
    demo, frames = open_demo(settings)
    study = demo.study
    if settings.prepare:
        made = study.prepare(demo.model(study.checkpoint), echo)
        echo(f"study ready: {len(study.strategies) * len(study.seeds)} videos in {study.folder} ({made} made now)")
        return
    from .app import build, launch

    page = build(demo, frames, settings.pair_seed)
    ready = len(study.strategies) * len(study.seeds) - len(study.missing())
    where = ("this machine only; --host 0.0.0.0 serves your network" if is_local(settings.host)
             else "reachable from other machines: anyone who can reach this address can use it; the page lists only "
                  "the --checkpoint folders")  # fmt: skip
    echo(f"vin demo: http://{settings.host}:{settings.port} ({where}); Ctrl-C stops it")
    echo(f"checkpoints: {', '.join(demo.names)}; limits: {demo.caps.describe()}, {settings.votes_per_minute} votes a "
         "minute from one address")  # fmt: skip
    echo(f"votes: {demo.votes.path}; study: {study.folder} ({ready} of {len(study.strategies) * len(study.seeds)} videos "
         f"ready{'' if ready == len(study.strategies) * len(study.seeds) else '; vin demo --prepare makes the rest'})")  # fmt: skip
    try:
        launch(page, demo, settings.host, settings.port)
    except OSError as err:
        raise VinError(f"cannot serve on {settings.host}:{settings.port} ({err}); choose another --port") from None
