"""Readers: ROOT files (hepvld, CMS NanoAOD, Delphes) and awkward arrays -> hepvld events.

The only module of hepvld that imports uproot (lazily, on first file access).
"""

from hepvld.io.convert import as_event_array
from hepvld.io.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CorruptFileError,
    DuplicateEventError,
    HepvldIOError,
    InputFileNotFoundError,
    InvalidValueError,
    MissingBranchError,
    NonFiniteDrawError,
    NonFiniteError,
    NotRootFileError,
    ResumeError,
    SchemaError,
    TreeNotFoundError,
    TruthError,
    UnsupportedInputError,
)
from hepvld.io.reader import (
    check_root_file,
    chunk_ranges,
    inspect_files,
    iterate_events,
    open_events,
    resolve_paths,
)
from hepvld.io.schemas import DEEPJET_MEDIUM_WP, DELPHES, NANOAOD, SCHEMAS, CollectionMap, SchemaMap
from hepvld.io.validate import check_unique_events

__all__ = [
    "DEEPJET_MEDIUM_WP",
    "DELPHES",
    "NANOAOD",
    "SCHEMAS",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CollectionMap",
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
    "SchemaMap",
    "TreeNotFoundError",
    "TruthError",
    "UnsupportedInputError",
    "as_event_array",
    "check_root_file",
    "check_unique_events",
    "chunk_ranges",
    "inspect_files",
    "iterate_events",
    "open_events",
    "resolve_paths",
]
