"""What every hepvld command line shares: the parser, help formatting, errors, logging.

* :class:`Parser` never abbreviates options (``--worker 2`` is an error, not
  ``--workers 2``) and suggests the closest option for an unknown one.
* :class:`HelpFormatter` shows defaults, but not on flags (``--no-mpi`` does not read
  "(default: True)"): a flag's help says itself whether it is on by default.
* :func:`run` parses, sets up logging and runs a command body; the project's errors
  (unreadable inputs, bad settings, bad checkpoints, selection failures) become one
  message on stderr and exit status 1; ``-v`` / ``--debug`` also print the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

__all__ = [
    "CLIError",
    "HelpFormatter",
    "Parser",
    "add_debug_arguments",
    "expected_errors",
    "reading",
    "run",
    "suggest",
]

log = logging.getLogger("hepvld.cli")

#: Exit status of a command that failed with one of :func:`expected_errors`.
EXIT_ERROR = 1
#: Exit status after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """A command-line failure with a complete message (printed without traceback)."""


def expected_errors() -> tuple[type[BaseException], ...]:
    """The exception classes a command reports as one message (no traceback).

    The project's own errors (:class:`hepvld.io.HepvldIOError` and its subclasses,
    :class:`hepvld.config.ConfigError`, :class:`CLIError`) and the built-in classes that
    hepvld raises for bad inputs (``OSError`` for files, ``ValueError`` for values,
    ``KeyError`` for missing checkpoint entries). Anything else is a bug and keeps its
    traceback.
    """
    from hepvld.config import ConfigError
    from hepvld.io.errors import HepvldIOError

    return (CLIError, HepvldIOError, ConfigError, OSError, ValueError, KeyError)


@contextlib.contextmanager
def reading(what: str) -> Iterator[None]:
    """Prefix any error raised inside with ``what`` (e.g. ``"checkpoint runs/vld"``).

    Loading a checkpoint can fail deep inside safetensors or torch with a message that
    does not name the file; inside ``with reading(...)`` the error becomes a
    :class:`CLIError` whose message names the input first. ``KeyboardInterrupt`` and
    ``SystemExit`` pass through unchanged.
    """
    try:
        yield
    except CLIError:
        raise
    except Exception as err:
        text = _describe(err)
        if what in text:
            raise CLIError(text) from err
        raise CLIError(f"{what}: {text}") from err


def _describe(err: BaseException) -> str:
    """One line of text for an exception (``KeyError('x')`` -> ``missing entry 'x'``)."""
    if isinstance(err, KeyError) and len(err.args) == 1:
        return f"missing entry {err.args[0]!r}"
    text = str(err).strip()
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in text:
        text = f"{err.filename}: {text}"
    return text or type(err).__name__


def suggest(word: str, options: Sequence[str], n: int = 1) -> list[str]:
    """Up to ``n`` entries of ``options`` closest to ``word`` (``difflib``), best first."""
    return difflib.get_close_matches(word, list(options), n=n, cutoff=0.6)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except for flags (store_true/false, counts) and ``None``."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.nargs == 0 or action.default is None or action.default is argparse.SUPPRESS:
            return action.help
        if action.help and "%(default)" in action.help:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` without abbreviations and with "did you mean" hints."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def option_strings(self) -> list[str]:
        """Every long and short option this parser accepts."""
        return [s for action in self._actions for s in action.option_strings]

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self.unrecognized(extras))
        return ns

    def unrecognized(self, extras: Sequence[str]) -> str:
        """``unrecognized arguments: ...`` with the closest option for each unknown one."""
        message = "unrecognized arguments: " + " ".join(extras)
        hints = []
        for extra in extras:
            if not extra.startswith("-") or extra == "-":
                continue
            name = extra.split("=", 1)[0]
            close = suggest(name, self.option_strings(), n=2)
            if close:
                hints.append(f"{name}: did you mean {' or '.join(close)}?")
        if hints:
            message += " (" + "; ".join(hints) + ")"
        return message

    def error(self, message: str) -> NoReturn:
        usage = self.format_usage()
        if usage.count("\n") <= 6:
            sys.stderr.write(usage)
        else:  # a page of usage would bury the message
            sys.stderr.write(f"usage: {self.prog} [options] (`{self.prog} --help` lists them)\n")
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_debug_arguments(parser: argparse.ArgumentParser, *, verbose: bool = True) -> None:
    """``--debug`` (debug logging and tracebacks) and, unless the CLI has its own,
    ``-v/--verbose``."""
    group = parser.add_argument_group("diagnostics")
    if verbose:
        group.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0,
            help="debug logging; on an error also print the traceback",
        )
    group.add_argument(
        "--debug",
        action="store_true",
        help="debug logging, and the full traceback when the command fails",
    )


def _debugging(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False) or getattr(args, "verbose", 0))


def configure_logging(args: argparse.Namespace, *, quiet_level: int = logging.INFO) -> None:
    """Root logging: ``quiet_level`` normally, ``DEBUG`` with ``--debug`` or ``-v``."""
    level = logging.DEBUG if _debugging(args) else quiet_level
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv``, run ``body(args)`` and turn expected errors into one message.

    Returns the exit status: ``body``'s (0 if it returns ``None``), 1 after an expected
    error (:func:`expected_errors`; the message goes to stderr as
    ``PROG: error: MESSAGE``), 130 after Ctrl-C. With ``--debug`` or ``-v`` the traceback
    is printed first. ``SystemExit`` with a text message is reported the same way.
    """
    args = parser.parse_args(argv)
    debug = _debugging(args)
    try:
        return int(body(args) or 0)
    except KeyboardInterrupt:
        print(f"\n{parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as stop:
        if not isinstance(stop.code, str):
            raise
        if debug:
            traceback.print_exc()
        print(f"{parser.prog}: error: {stop.code}", file=sys.stderr)
        return EXIT_ERROR
    except expected_errors() as err:
        if debug:
            traceback.print_exc()
        print(f"{parser.prog}: error: {_describe(err)}", file=sys.stderr)
        if not debug:
            print(f"{parser.prog}: (rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_ERROR
