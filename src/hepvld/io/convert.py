"""In-memory inputs -> an awkward array of events with zipped collections.

Users hold events in several forms; all of them are accepted wherever hepvld takes events
(:func:`hepvld.io.open_events`, :func:`hepvld.unfold`):

* zipped collections (``events.Jet.pt``): an ``ak.Array`` from hepvld or coffea
  ``NanoEvents`` — returned unchanged;
* flat NanoAOD-style branches as read by ``uproot``'s ``tree.arrays()`` (fields
  ``Jet_pt``, ``nJet``, ``MET_pt``, ...) or Delphes-style ones (``Jet.PT``): grouped into
  collections (counters ``nJet`` / ``Jet_size`` are dropped, the branches of one collection
  must have the same length per event);
* a ``dict`` of such branches (``tree.arrays(how=dict)``).

Anything else is reported by the caller with its type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak

from hepvld.io.schemas import DELPHES, NANOAOD
from hepvld.io.validate import check_counts

__all__ = ["as_event_array", "is_event_array"]

_ZIPPED_MARKERS = ("Jet", "GenPart", "Particle", "Electron", "Muon")
#: Collections grouped from flat branches, per separator.
_FLAT = {
    "_": sorted({c.source for c in NANOAOD.collections.values()}),
    ".": sorted({c.source for c in DELPHES.collections.values()} | {"Event"}),
}


def is_event_array(source: Any) -> bool:
    """Duck typing: an awkward / coffea array of events with collection fields (``.Jet``)."""
    if isinstance(source, ak.Record) or not hasattr(source, "__len__"):
        return False
    fields = getattr(source, "fields", None)
    return isinstance(fields, list) and any(name in fields for name in _ZIPPED_MARKERS)


def _flat_groups(fields: list[str]) -> dict[str, dict[str, str]]:
    """Collection -> field -> flat field name, for names like ``Jet_pt`` / ``Jet.PT``."""
    groups: dict[str, dict[str, str]] = {}
    for name in fields:
        for sep, collections in _FLAT.items():
            head, found, tail = name.partition(sep)
            if found and tail and head in collections:
                groups.setdefault(head, {})[tail] = name
                break
    return groups


def as_event_array(source: Any) -> ak.Array | None:
    """``source`` as events with zipped collections, or ``None`` when it is no event array.

    Parameters
    ----------
    source
        An ``ak.Array`` (zipped or flat branches), coffea ``NanoEvents``, or a mapping of
        flat branch name -> array (all of one length ``B``).

    Returns
    -------
    ak.Array or None
        ``B`` records; flat branches are zipped per collection (``Jet_pt`` -> ``Jet.pt``).

    Raises
    ------
    SchemaError
        Branches of one collection with different lengths per event (naming them).
    """
    if is_event_array(source):
        return source
    if isinstance(source, Mapping):
        if not source or not all(isinstance(k, str) for k in source):
            return None
        try:
            source = ak.zip(dict(source), depth_limit=1)
        except Exception:  # different lengths or non-array values: not an event table
            return None
    if not isinstance(source, ak.Array):
        return None
    fields = ak.fields(source)
    groups = _flat_groups(fields)
    if not groups:
        return None
    record: dict[str, Any] = {}
    grouped = {name for g in groups.values() for name in g.values()}
    for coll, members in groups.items():
        arrays = {f: source[name] for f, name in members.items()}
        check_counts(arrays, members, f"awkward input (flat branches of {coll})")
        record[coll] = ak.zip(arrays)
    counters = {f"n{c}" for c in groups} | {f"{c}_size" for c in groups}
    for name in fields:
        if name not in grouped and name not in counters:
            record[name] = source[name]
    return ak.zip(record, depth_limit=1)
