"""The command-line boundary: what a user can get wrong is one line on stderr, a bug keeps its traceback.

Every entry point (``trainer.py``, ``transfer.py``, ``demo.py``, ``benchmark.py``, the
experiment runners, the latent tool) parses with :class:`ArgumentParser` and runs its
``main`` through :func:`run`. Errors of bad input are :class:`InputError`: the project's
own input errors (an unreadable audio file, a foreign or damaged checkpoint, an unknown
config key, an empty data folder, an output that cannot be written: :class:`OutputError`)
subclass it, so the library raises them with a message that names the culprit and the
entry point prints that message alone. ``--debug`` shows the traceback of any error.
"""
from __future__ import annotations

import argparse
import math
import sys


class InputError(ValueError):
    """Bad input: an argument, a file, a checkpoint or a data folder that cannot be used.
    The message names it, says what is wrong and what was expected."""


class OutputError(InputError):
    """An output that cannot be written: an ``--out`` that is a file, a folder without write
    permission or on a read-only file system, a full disk. The message names the path and
    says what was expected. Unlike other input errors it stops a run over many inputs (the
    next one would fail the same way)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a ``--debug`` flag and one-line errors (no usage block)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", help="show the full traceback of an error")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (whitespace runs, newlines included, become one space)."""
    text = " ".join(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).split())
    return text or type(exc).__name__


def run(main, argv=None, prog: str | None = None):
    """Call ``main(argv)``; an :class:`InputError` or a missing file becomes ``prog: error: ...``
    on stderr and exit status 1 (unless ``--debug`` is among the arguments)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        return main(args)
    except (InputError, FileNotFoundError) as exc:
        if "--debug" in args:
            raise
        name = prog or (sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "error")
        sys.stderr.write(f"{name}: error: {one_line(exc)}\n")
        raise SystemExit(1) from None
