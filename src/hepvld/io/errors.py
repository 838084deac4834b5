"""Exceptions raised by the readers.

Every exception is a ``ValueError`` (or ``FileNotFoundError``) so that generic callers can
catch it with the built-in class, while analysis code can catch the precise kind. Messages
always name the file, tree, branch or value at fault.
"""

from __future__ import annotations

__all__ = [
    "HepvldIOError",
    "InputFileNotFoundError",
    "MissingBranchError",
    "NonFiniteError",
    "SchemaError",
    "TreeNotFoundError",
    "TruthError",
]


class HepvldIOError(Exception):
    """Base class of every error raised by :mod:`hepvld.io`."""


class InputFileNotFoundError(HepvldIOError, FileNotFoundError):
    """An input path does not exist or cannot be opened as a ROOT file."""


class SchemaError(HepvldIOError, ValueError):
    """The input does not follow any supported schema (or the requested one)."""


class TreeNotFoundError(SchemaError):
    """The requested tree is not in the file; the message lists the trees present."""


class MissingBranchError(SchemaError):
    """Required branches (or awkward fields) are missing; the message lists them."""

    def __init__(self, message: str, missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.missing: list[str] = list(missing or [])


class NonFiniteError(HepvldIOError, ValueError):
    """NaN or infinite values in an input branch; the message names branch and count."""


class TruthError(SchemaError):
    """The generator-level record cannot provide the requested truth information."""
