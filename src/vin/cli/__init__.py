"""The `vin` command line: train, generate, eval, report, bench, demo.

Every user error is one line on stderr and exit code 2; Ctrl-C exits with 130 and SIGTERM with 143,
quietly, and neither leaves a partial file. Only click and the torch-free option lists are imported
here: torch, diffusers and the model load inside the commands that use them (`vin --help` is instant).

One module per command (`train`, `generate`, `evaluate`: eval and report, `bench`, `demo`); `flags`
declares the flags several commands share and the typed objects they arrive as.
"""

from __future__ import annotations

import signal
import sys

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


def _terminate(signum: int, frame) -> None:
    """SIGTERM unwinds like Ctrl-C: atomic writes remove their temporary files on the way out."""
    raise SystemExit(128 + signum)


class _Group(click.Group):
    """Turns usage errors, VinError and Ctrl-C into one line (or none) and an exit code; SIGTERM exits cleanly."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        import warnings

        shown, warnings.showwarning = warnings.showwarning, _warn_line  # the library's warnings as one line each
        previous = _install(signal.SIGTERM, _terminate)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
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
            _install(signal.SIGTERM, previous)
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
