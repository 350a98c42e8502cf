"""The `vin` command line: train, generate, eval, report, bench, demo.

Every user error is one line on stderr and exit code 2; Ctrl-C exits with 130 and SIGTERM with 143,
quietly, and neither leaves a partial file. Only click and the torch-free option lists are imported
here: torch, diffusers and the model load inside the commands that use them (`vin --help` is instant).

One module per command (`train`, `generate`, `evaluate`: eval and report, `bench`, `demo`); `flags`
declares the flags several commands share and the typed objects they arrive as.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import click

from ..errors import VinError
from .bench import bench
from .demo import demo
from .evaluate import evaluate, report
from .generate import generate
from .train import train


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


RETRY_S = 0.05  # how often a signal held during an import is delivered again


class _Held:
    """Signals that arrived during an import and have not stopped the command yet, and the timers that resend them."""

    signals: set[int] = set()
    retries: list[threading.Timer] = []

    @classmethod
    def hold(cls, signum: int) -> None:
        cls.signals.add(signum)
        retry = threading.Timer(RETRY_S, os.kill, (os.getpid(), signum))
        retry.daemon = True  # never keeps a finishing process alive
        retry.start()
        cls.retries = [t for t in cls.retries if t.is_alive()] + [retry]

    @classmethod
    def release(cls) -> set[int]:
        """Forgets the held signals (returned) and stops the timers: at a command's end, or once one is acted on."""
        for retry in cls.retries:
            retry.cancel()
        held, cls.signals, cls.retries = cls.signals, set(), []
        return held


def _interrupt(signum: int, frame) -> None:
    """Ctrl-C raises KeyboardInterrupt and SIGTERM SystemExit(143), so that atomic writes remove their temporary
    files on the way out; one that arrives during an import is held until the import has finished.

    numpy, scipy and torch do not survive an import interrupted half-way: the half-made module is kept and a
    later import fails (a RecursionError in numpy's lazy `linalg`, "cannot load module more than once", or a
    C++ abort), a traceback or even exit 0 instead of 130. A held signal is sent again every RETRY_S seconds,
    and a command that ends before then ends as the signal would have ended it (`_raise_held`).
    """
    if _importing(frame):
        _Held.hold(signum)
        return
    _Held.release()
    _raise(signum)


def _raise(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def _raise_held() -> None:
    """The command has ended: a signal still held stops the process now, as it would have stopped the command."""
    held = _Held.release()
    for signum in (signal.SIGTERM, signal.SIGINT):
        if signum in held:
            _raise(signum)


def _importing(frame) -> bool:
    """Whether the interrupted Python code runs inside an import (a module's top level, at any depth)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


class _Group(click.Group):
    """Turns usage errors, VinError and Ctrl-C into one line (or none) and an exit code; SIGTERM exits cleanly.
    Both signals wait for an import under way to finish (`_interrupt`)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        import warnings

        shown, warnings.showwarning = warnings.showwarning, _warn_line  # the library's warnings as one line each
        previous = {signum: _install(signum, _interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            _raise_held()
        except click.exceptions.NoArgsIsHelpError as err:
            click.echo(err.format_message())
            sys.exit(0)
        except click.UsageError as err:
            where = f" (see {err.ctx.command_path} --help)" if err.ctx is not None else ""
            _fail(" ".join(err.format_message().split()) + where)
        except click.ClickException as err:
            _fail(" ".join(err.format_message().split()))
        except VinError as err:
            _fail(str(err))
        except (click.Abort, KeyboardInterrupt):
            sys.exit(130)
        finally:
            _Held.release()
            for signum, handler in previous.items():
                _install(signum, handler)
            warnings.showwarning = shown
        sys.exit(code if isinstance(code, int) else 0)


def _warn_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning from the library as one `warning:` line on stderr (no file, line number or source)."""
    click.echo(f"warning: {message}", err=True)


def _install(signum: int, handler):
    """signal.signal where it is allowed (the main thread); returns the handler it replaced."""
    if handler is None:
        return None
    try:
        return signal.signal(signum, handler)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        return None


@click.group(cls=_Group)
@click.version_option(package_name="vin")
def main() -> None:
    """vin: long videos from a video DiT, chunk-parallel with a Video Interface Network."""


main.add_command(train)
main.add_command(generate)
main.add_command(evaluate)
main.add_command(report)
main.add_command(demo)
main.add_command(bench)
