"""Readers: ROOT files (hepvld, CMS NanoAOD, Delphes) and awkward arrays -> hepvld events.

The only module of hepvld that imports uproot (lazily, on first file access).
"""

from hepvld.io.errors import (
    HepvldIOError,
    InputFileNotFoundError,
    MissingBranchError,
    NonFiniteError,
    SchemaError,
    TreeNotFoundError,
    TruthError,
)
from hepvld.io.reader import iterate_events, open_events, resolve_paths
from hepvld.io.schemas import DEEPJET_MEDIUM_WP, DELPHES, NANOAOD, SCHEMAS, CollectionMap, SchemaMap

__all__ = [
    "DEEPJET_MEDIUM_WP",
    "DELPHES",
    "NANOAOD",
    "SCHEMAS",
    "CollectionMap",
    "HepvldIOError",
    "InputFileNotFoundError",
    "MissingBranchError",
    "NonFiniteError",
    "SchemaError",
    "SchemaMap",
    "TreeNotFoundError",
    "TruthError",
    "iterate_events",
    "open_events",
    "resolve_paths",
]
