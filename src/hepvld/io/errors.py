"""Exceptions raised by the readers and the checkpoint loader.

Every exception is a ``ValueError`` (or ``FileNotFoundError`` / ``OSError`` /
``TypeError``) so that generic callers can catch it with the built-in class, while
analysis code and the command lines catch :class:`HepvldIOError`. Messages always name
the file, tree, branch or value at fault and say what to do.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "CorruptFileError",
    "DuplicateEventError",
    "HepvldIOError",
    "InputFileNotFoundError",
    "InvalidValueError",
    "MissingBranchError",
    "NonFiniteDrawError",
    "NonFiniteError",
    "NotRootFileError",
    "ResumeError",
    "SchemaError",
    "TreeNotFoundError",
    "TruthError",
    "UnsupportedInputError",
]


class HepvldIOError(Exception):
    """Base class of every error raised by :mod:`hepvld.io` (and checkpoint loading)."""


class InputFileNotFoundError(HepvldIOError, FileNotFoundError):
    """An input path does not exist (or a glob pattern matches nothing)."""


class NotRootFileError(HepvldIOError, ValueError):
    """The file exists but is not a ROOT file (empty, text, another format)."""


class CorruptFileError(HepvldIOError, OSError):
    """A ROOT file is truncated or damaged; the message names the file and entry range."""


class UnsupportedInputError(HepvldIOError, TypeError):
    """An in-memory input of a type hepvld cannot read events from."""


class SchemaError(HepvldIOError, ValueError):
    """The input does not follow any supported schema (or the requested one)."""


class TreeNotFoundError(SchemaError):
    """The requested tree is not in the file; the message lists the objects present."""


class MissingBranchError(SchemaError):
    """Required branches (or awkward fields) are missing; the message lists them."""

    def __init__(self, message: str, missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.missing: list[str] = list(missing or [])


class InvalidValueError(HepvldIOError, ValueError):
    """Values outside the physical range (negative pT, |η| > 10, 1e30 GeV, ...) in a branch;
    the message names the branch, the count and the first entries."""


class NonFiniteError(InvalidValueError):
    """NaN or infinite values in an input branch; the message names branch and count."""


class DuplicateEventError(SchemaError):
    """Event numbers repeat (per-event noise and splits are keyed on them)."""


class TruthError(SchemaError):
    """The generator-level record cannot provide the requested truth information."""


class CheckpointError(HepvldIOError, ValueError):
    """A checkpoint is unreadable, incomplete, of another model or of a newer format."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint at the given path."""


class ResumeError(HepvldIOError, ValueError):
    """A killed job cannot be resumed (no or damaged journal, other options, unreadable
    partial output); the message says why and what to do."""


class NonFiniteDrawError(HepvldIOError, ArithmeticError):
    """The model produced NaN/inf posterior draws; nothing is written. The message names
    the events (their inputs are out of the training range or the checkpoint is broken)."""
