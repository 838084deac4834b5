"""Columnar read of ROOT files: the few branches a consumer needs, as flat numpy arrays.

:func:`iterate_columns` is the read of :func:`hepvld.io.iterate_events` without the
event records: the same files, trees, schemas, chunks (``step_size``, never spanning two
files), completion rules (:func:`hepvld.io.reader._complete`) and duplicate checks, but
only the requested fields are read and every collection stays as ``offsets`` + flat
``content`` (no awkward records, no ``vector`` behaviours). Used by
:func:`hepvld.data.load_tensors`, whose tensors need 26 of the ~50 branches of a hepvld
file.

A chunk whose values :func:`hepvld.io.validate.check_values` would report or repair
(NaN, out-of-range values, negative masses, φ to wrap), whose branches do not look like
plain numbers, whose collections disagree in their counts, whose read fails, or which
lacks what the completion rules need, is instead read by the event reader (all branches,
:func:`~hepvld.io.reader.iterate_events`' own function) and handed over as
:attr:`ColumnChunk.events`: its errors, logs and dropped events are then exactly the
event reader's.

Not read, hence not validated: the branches the consumer does not ask for (e.g.
``GenJet_*`` for parton-level tensors). ``open`` errors (missing file, tree, required
branches) are the event reader's, raised by the same function.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from hepvld.io.reader import (
    OnDuplicate,
    OnNonFinite,
    SchemaName,
    _complete,
    _open_tree,
    _ranges,
    _read,
    _Tree,
    _Unique,
    resolve_paths,
)
from hepvld.io.schemas import DEEPJET_MEDIUM_WP
from hepvld.io.validate import KINEMATIC_FIELDS, values_clean

__all__ = ["ColumnChunk", "iterate_columns"]

#: Fields :func:`hepvld.io.reader._complete` fills in from others (output -> inputs), per
#: collection; ``event`` is always read (duplicate check).
_COMPLETION_INPUTS = {
    "Jet": {"btagged": ("btagDeepFlavB",)},
    "Electron": {"mass": ("pt",), "pfRelIso03_all": ("pt",)},
    "Muon": {"mass": ("pt",), "pfRelIso04_all": ("pt",)},
}


@dataclass
class ColumnChunk:
    """One chunk of :func:`iterate_columns`.

    Attributes
    ----------
    n
        Events ``B`` of the chunk (entries read).
    where
        ``"'file.root', tree 'Events', entries lo-hi"`` (as ``chunk.attrs`` of
        :func:`~hepvld.io.iterate_events` chunks, :data:`~hepvld.io.reader.SOURCE_ATTR`).
    values
        Collection -> field -> flat numpy content; ``""`` and singleton collections
        (``MET``) hold ``(B,)`` per-event arrays, jagged collections ``(P,)`` contents.
    offsets
        Jagged collection -> ``(B + 1,)`` int64 offsets into its contents (from 0).
    events
        Set instead of ``values`` when the chunk was read by the event reader
        (module docstring): the ``ak.Array`` :func:`~hepvld.io.iterate_events` yields.
    """

    n: int
    where: str
    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    offsets: dict[str, np.ndarray] = field(default_factory=dict)
    events: ak.Array | None = None

    def counts(self, collection: str) -> np.ndarray:
        """``(B,)`` int64 entries per event of a jagged collection."""
        return np.diff(self.offsets[collection])


def _numpy(array: Any) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(content, offsets or None)`` of a freshly read branch, or ``None`` when it is not
    a plain 1-D or list-of-numbers array."""
    layout = ak.to_layout(array)
    if isinstance(layout, ak.contents.NumpyArray):
        data = np.asarray(layout.data)
        return (data, None) if data.ndim == 1 else None
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(
        layout.content, ak.contents.NumpyArray
    ):
        if layout.parameter("__array__") is not None or layout.content.parameters:
            return None  # strings
        offsets = np.asarray(layout.offsets.data, dtype=np.int64)
        content = np.asarray(layout.content.data)
        if content.ndim != 1:
            return None
        content = content[offsets[0] : offsets[-1]]
        return content, offsets - offsets[0]
    return None


def _convert(content: np.ndarray, converter: str | None) -> np.ndarray:
    if converter == "bool":
        return content.astype(bool)
    if converter == "bit0":
        return np.bitwise_and(content, 1) != 0
    return content


def _chunk(
    t: _Tree,
    wanted: Mapping[str, Sequence[str]],
    lo: int,
    hi: int,
    offset: int,
    btag_wp: float,
) -> ColumnChunk | None:
    """Read entries ``[lo, hi)`` of ``wanted`` columnar, or ``None`` (use the event reader)."""
    where = f"{t.path!r}, tree {t.name!r}"
    n = hi - lo
    reads: dict[tuple[str, str], tuple[str, str | None]] = {}
    wanted = {**wanted, "": (*wanted.get("", ()), "event")}
    for out, fields in wanted.items():
        plan = t.plan.get(out)
        if plan is None:
            continue
        inputs = _COMPLETION_INPUTS.get(out, {})
        extra = [i for f in fields if f not in plan for i in inputs.get(f, ())]
        for f in dict.fromkeys((*fields, *extra)):
            if f in plan:
                src, spec = plan[f]
                conv = None if isinstance(spec, str) else spec[1]
                reads[out, f] = (t.schema.branch(src, spec), conv)
    try:
        arrays = t.tree.arrays(
            sorted({b for b, _ in reads.values()}), entry_start=lo, entry_stop=hi, how=dict
        )
    except Exception:  # damaged baskets: the event reader raises its CorruptFileError
        return None
    chunk = ColumnChunk(n=n, where=f"{where}, entries {lo}-{hi}")
    cols: dict[str, dict[str, Any]] = {out: {} for out in t.plan if out in wanted}
    for (out, f), (branch, conv) in reads.items():
        parts = _numpy(arrays[branch])
        if parts is None:
            return None
        content, offsets = parts
        if f in KINEMATIC_FIELDS and content.dtype.kind != "f":
            return None  # check_dtype refuses it
        single = out == "" or t.schema.collections[out].singleton
        if offsets is not None and single:  # Delphes: singletons as length-1 lists
            if len(offsets) != n + 1 or not (np.diff(offsets) == 1).all():
                return None
            offsets = None
        if offsets is not None:
            known = chunk.offsets.setdefault(out, offsets)
            if not np.array_equal(known, offsets):
                return None  # check_counts refuses it
        elif len(content) != n:
            return None
        cols[out][f] = _convert(content, conv)
    jet = cols.get("Jet")
    if jet is not None and "btagged" not in jet and "btagDeepFlavB" not in jet:
        return None  # _complete raises MissingBranchError
    _complete(cols, n, offset + lo, where, btag_wp)
    for out, values in cols.items():
        arrays = {f: np.asarray(v) for f, v in values.items()}
        if not all(values_clean(out, f, v) for f, v in arrays.items()):
            return None  # check_values would report or repair something
        chunk.values[out] = {f: v for f, v in arrays.items() if f in wanted[out]}
    return chunk


def iterate_columns(
    source: Any,
    wanted: Mapping[str, Sequence[str]],
    *,
    step_size: int = 100_000,
    tree: str = "Events",
    schema: SchemaName = "auto",
    entry_start: int | None = None,
    entry_stop: int | None = None,
    on_nonfinite: OnNonFinite = "raise",
    on_duplicate: OnDuplicate = "raise",
    btag_wp: float = DEEPJET_MEDIUM_WP,
) -> Iterator[ColumnChunk]:
    """Yield the chunks of ROOT files ``source`` as flat columns (module docstring).

    Parameters
    ----------
    source
        Path, glob pattern or sequence of them (ROOT files only).
    wanted
        Output collection (``""``: per-event fields) -> output fields, in hepvld's names
        (``{"Jet": ("pt", "eta"), "": ("event",)}``); fields a file lacks are filled by
        the completion rules (``Electron.mass``, ``event``, ``genWeight``, ...) or absent
        from :attr:`ColumnChunk.values` (optional fields such as ``statusFlags``), and a
        collection the file lacks (optional ``GenPart``) is absent.
    step_size, tree, schema, entry_start, entry_stop, on_nonfinite, on_duplicate, btag_wp
        As in :func:`hepvld.io.iterate_events` (``on_nonfinite`` applies to the chunks the
        event reader reads; a columnar chunk has no invalid value in what it reads).

    Yields
    ------
    ColumnChunk
        With ``values`` (columnar) or ``events`` (read by the event reader).
    """
    if step_size < 1:
        raise ValueError(f"step_size must be >= 1, got {step_size}")
    if on_nonfinite not in ("raise", "drop", "ignore"):
        raise ValueError(f"on_nonfinite={on_nonfinite!r}; choose 'raise', 'drop' or 'ignore'")
    unique = _Unique(on_duplicate)
    trees = [_open_tree(p, tree, schema, None) for p in resolve_paths(source)]
    try:
        ranges = _ranges([t.tree.num_entries for t in trees], entry_start, entry_stop)
        for t, (lo, hi, offset) in zip(trees, ranges):
            unique.new_file()
            where = f"{t.path!r}, tree {t.name!r}"
            for c0 in range(lo, hi, step_size):
                c1 = min(c0 + step_size, hi)
                chunk = _chunk(t, wanted, c0, c1, offset, btag_wp)
                if chunk is None:
                    events = _read(t, c0, c1, offset, on_nonfinite, btag_wp)
                    unique.add(events, where)
                    yield ColumnChunk(
                        n=len(events), where=f"{where}, entries {c0}-{c1}", events=events
                    )
                    continue
                unique.add_numbers(chunk.values[""]["event"], where)
                yield chunk
    finally:
        for t in trees:
            t.tree.file.close()
