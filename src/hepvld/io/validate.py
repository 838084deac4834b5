"""Input validation of freshly read branches: types, jagged counts, finite and physical values.

Called by the readers (:mod:`hepvld.io.reader`) on every chunk before events are built,
so that a malformed file fails with a message naming the file, branch and entries instead
of a broadcast error deep inside awkward, and so that no NaN reaches the networks. Every
check is vectorised over the flat content of a branch (no per-event Python loop).

Rules (documented in ``docs/reliability.md``):

* kinematic branches (``pt``, ``eta``, ``phi``, ``mass``) must be floating point: an
  integer branch means the values were truncated when written, so it is refused;
  string branches are refused everywhere;
* every field of a jagged collection has the same length per event;
* NaN / ±inf, ``pt < 0``, ``pt`` or ``mass`` above :data:`MAX_ENERGY`, ``mass`` below
  ``-NEGATIVE_MASS_TOLERANCE``, ``|η| >`` :data:`MAX_ABS_ETA` (detector-level collections)
  and ``|φ| > 2π`` are *invalid*: ``on_nonfinite="raise"`` (default) raises
  :class:`~hepvld.io.errors.InvalidValueError` / :class:`~hepvld.io.errors.NonFiniteError`,
  ``"drop"`` drops the affected events (logged per branch, with the total), ``"ignore"``
  keeps them (logged);
* recoveries, always logged with a count: small negative masses
  (``-NEGATIVE_MASS_TOLERANCE <= m < 0``, float rounding in NanoAOD) are set to 0 and
  ``π < |φ| <= 2π`` is wrapped into ``[-π, π]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import awkward as ak
import numpy as np

from hepvld.io.errors import (
    DuplicateEventError,
    InvalidValueError,
    NonFiniteError,
    SchemaError,
)

__all__ = [
    "DETECTOR_COLLECTIONS",
    "KINEMATIC_FIELDS",
    "MAX_ABS_ETA",
    "MAX_ENERGY",
    "NEGATIVE_MASS_TOLERANCE",
    "check_counts",
    "check_dtype",
    "check_unique_events",
    "check_values",
    "values_clean",
]

log = logging.getLogger(__name__)

OnNonFinite = Literal["raise", "drop", "ignore"]

#: Fields that must be stored as floating point numbers.
KINEMATIC_FIELDS: frozenset[str] = frozenset({"pt", "eta", "phi", "mass"})
#: Largest allowed pT / mass [GeV] (the LHC beam energy is 6.8 TeV; 100 TeV is garbage).
MAX_ENERGY: float = 1.0e5
#: Largest allowed |η| of detector-level objects (the CMS calorimeters end at 5.2).
MAX_ABS_ETA: float = 10.0
#: Negative masses down to this value [GeV] are float rounding and set to 0 (logged).
NEGATIVE_MASS_TOLERANCE: float = 1.0
#: Collections whose η is range-checked (GenPart holds beam partons at |η| ~ 1e4).
DETECTOR_COLLECTIONS: frozenset[str] = frozenset(
    {"Jet", "Electron", "Muon", "GenJet", "GenDressedLepton"}
)
_PI = float(np.pi)
_PHI_SLACK = 1e-4


def _fix_hint() -> str:
    return (
        "pass on_nonfinite='drop' to drop those events (CLI: --on-nonfinite drop), or fix the file"
    )


def check_dtype(array: Any, branch: str, field: str, where: str) -> None:
    """Refuse string branches anywhere and non-float kinematic branches.

    Raises
    ------
    SchemaError
        Naming ``branch`` and its type.
    """
    layout = ak.to_layout(array)
    if layout.purelist_parameter("__array__") in ("string", "bytestring"):
        raise SchemaError(
            f"{where}: branch {branch!r} holds strings; hepvld needs numbers there "
            "(check that the file is a NanoAOD-like event file)"
        )
    if field not in KINEMATIC_FIELDS:
        return
    kind = _primitive(layout)
    if kind is None:
        raise SchemaError(
            f"{where}: branch {branch!r} has type {ak.type(array)}; expected floating point"
        )
    if not np.issubdtype(kind, np.floating):
        raise SchemaError(
            f"{where}: kinematic branch {branch!r} is stored as {kind}, not floating point: "
            "its values were truncated to whole numbers when the file was written; "
            "rewrite the file with float32 branches"
        )


def _primitive(layout: Any) -> np.dtype | None:
    while True:
        if isinstance(layout, ak.contents.NumpyArray):
            return layout.data.dtype
        if isinstance(layout, ak.contents.EmptyArray):
            return np.dtype(np.float64)
        content = getattr(layout, "content", None)
        if content is None:
            return None
        layout = content


def check_counts(fields: dict[str, Any], branches: dict[str, str], where: str) -> None:
    """Every field of one jagged collection must have the same length in every event.

    Parameters
    ----------
    fields
        Output field -> jagged array ``(B, var)``.
    branches
        Output field -> branch name in the source (for the message).

    Raises
    ------
    SchemaError
        Naming the two branches and the first entry where they differ.
    """
    ref_name: str = ""
    ref_counts: np.ndarray | None = None
    for f, arr in fields.items():
        if not isinstance(arr, ak.Array) or arr.ndim < 2:
            continue
        counts = np.asarray(ak.to_numpy(ak.num(arr, axis=1)))
        if ref_counts is None:
            ref_name, ref_counts = f, counts
            continue
        if len(counts) != len(ref_counts) or not np.array_equal(counts, ref_counts):
            bad = np.flatnonzero(counts != ref_counts)
            first = int(bad[0])
            raise SchemaError(
                f"{where}: branches {branches.get(ref_name, ref_name)!r} and "
                f"{branches.get(f, f)!r} have different numbers of entries in "
                f"{len(bad)} events (first at entry {first}: {int(ref_counts[first])} vs "
                f"{int(counts[first])}); all branches of one collection must share one "
                "counter (nJet, ...): the file is inconsistent, rewrite it"
            )


@dataclass
class _Problem:
    branch: str
    what: str
    n_values: int
    per_event: np.ndarray  # (B,) bool
    nonfinite: bool


def _per_event(bad: np.ndarray, offsets: np.ndarray | None, n: int) -> np.ndarray:
    if offsets is None:
        return bad
    out = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(bad)
    if len(idx):
        out[np.searchsorted(offsets, idx, side="right") - 1] = True
    return out


def _flat_and_offsets(arr: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(arr, np.ndarray):
        return arr, None
    a = arr if isinstance(arr, ak.Array) else ak.Array(arr)
    if a.ndim == 1:
        return np.asarray(ak.to_numpy(a)), None
    counts = np.asarray(ak.to_numpy(ak.num(a, axis=1)), dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return np.asarray(ak.to_numpy(ak.flatten(a, axis=None))), offsets


def _rebuild(flat: np.ndarray, offsets: np.ndarray | None) -> Any:
    if offsets is None:
        return flat
    return ak.unflatten(flat, np.diff(offsets))


def _entries(per_event: np.ndarray, offset: int, k: int = 5) -> str:
    idx = np.flatnonzero(per_event)[:k] + offset
    more = ", ..." if per_event.sum() > k else ""
    return ", ".join(str(int(i)) for i in idx) + more


def check_values(
    cols: dict[str, dict[str, Any]],
    branch_of: Callable[[str, str], str],
    n: int,
    offset: int,
    where: str,
    on_nonfinite: OnNonFinite,
) -> np.ndarray | None:
    """Finite and physical-range checks of every float field; recoveries applied in place.

    Parameters
    ----------
    cols
        Output collection (``""``: per-event fields) -> field -> array of ``n`` events.
    branch_of
        ``(collection, field) -> branch name`` for messages.
    n, offset
        Events in the chunk and entry number of its first event (for messages).
    where
        ``"'file.root', tree 'Events'"`` or similar.
    on_nonfinite
        ``"raise"``, ``"drop"`` or ``"ignore"`` (see the module docstring).

    Returns
    -------
    np.ndarray or None
        ``(n,)`` bool mask of events to keep (``"drop"`` with invalid events), else None.

    Raises
    ------
    NonFiniteError, InvalidValueError
        With ``on_nonfinite="raise"``: branch, number of values and events, first entries.
    """
    if on_nonfinite not in ("raise", "drop", "ignore"):
        raise ValueError(f"on_nonfinite={on_nonfinite!r}; choose 'raise', 'drop' or 'ignore'")
    if n == 0:
        return None
    problems: list[_Problem] = []
    for coll, fields in cols.items():
        for f in list(fields):
            flat, offsets = _flat_and_offsets(fields[f])
            if flat.dtype.kind != "f":
                continue
            branch = branch_of(coll, f)
            finite = np.isfinite(flat)
            checks: list[tuple[str, np.ndarray, bool]] = []
            if not finite.all():
                checks.append(("NaN/inf", ~finite, True))
            with np.errstate(invalid="ignore"):
                if f == "pt":
                    checks.append(("negative", flat < 0, False))
                if f in ("pt", "mass"):
                    checks.append((f"above {MAX_ENERGY:g} GeV", flat > MAX_ENERGY, False))
                if f == "mass":
                    small = (flat < 0) & (flat >= -NEGATIVE_MASS_TOLERANCE)
                    if small.any():
                        log.info(
                            "%s: %d negative values in %r down to -%g GeV (rounding) set to 0",
                            where,
                            int(small.sum()),
                            branch,
                            NEGATIVE_MASS_TOLERANCE,
                        )
                        flat = np.where(small, 0, flat).astype(flat.dtype)
                        fields[f] = _rebuild(flat, offsets)
                    checks.append(
                        (
                            f"below -{NEGATIVE_MASS_TOLERANCE:g} GeV",
                            flat < -NEGATIVE_MASS_TOLERANCE,
                            False,
                        )
                    )
                if f == "eta" and coll in DETECTOR_COLLECTIONS:
                    checks.append((f"|eta| > {MAX_ABS_ETA:g}", np.abs(flat) > MAX_ABS_ETA, False))
                if f == "phi":
                    aphi = np.abs(flat)
                    wrap = (aphi > _PI + _PHI_SLACK) & (aphi <= 2 * _PI + _PHI_SLACK)
                    if wrap.any():
                        log.warning(
                            "%s: %d values of %r in (pi, 2pi] wrapped into [-pi, pi]",
                            where,
                            int(wrap.sum()),
                            branch,
                        )
                        wrapped = np.mod(flat + _PI, 2 * _PI) - _PI
                        flat = np.where(wrap, wrapped, flat).astype(flat.dtype)
                        fields[f] = _rebuild(flat, offsets)
                    checks.append(("|phi| > 2 pi", aphi > 2 * _PI + _PHI_SLACK, False))
            for what, bad, nonfinite in checks:
                if bad.any():
                    problems.append(
                        _Problem(
                            branch, what, int(bad.sum()), _per_event(bad, offsets, n), nonfinite
                        )
                    )
    if not problems:
        return None
    bad_any = np.zeros(n, dtype=bool)
    for p in problems:
        msg = (
            f"{where}: branch {p.branch!r} has {p.n_values} {p.what} values in "
            f"{int(p.per_event.sum())} of {n} events (entries {_entries(p.per_event, offset)})"
        )
        if on_nonfinite == "raise":
            cls = NonFiniteError if p.nonfinite else InvalidValueError
            raise cls(f"{msg}; {_fix_hint()}")
        if on_nonfinite == "ignore":
            log.warning("%s; kept (on_nonfinite='ignore')", msg)
            continue
        log.warning("%s; dropping those events", msg)
        bad_any |= p.per_event
    if not bad_any.any():
        return None
    log.warning(
        "%s: dropped %d of %d events with invalid inputs (on_nonfinite='drop')",
        where,
        int(bad_any.sum()),
        n,
    )
    return ~bad_any


def values_clean(collection: str, field: str, flat: np.ndarray) -> bool:
    """True when :func:`check_values` has nothing to report or repair in one field.

    Parameters
    ----------
    collection
        Output collection (``""``: per-event fields), for the η rule.
    field
        Output field name (``pt``, ``mass``, ``eta``, ``phi``, other).
    flat
        ``(P,)`` flat content of the field (any dtype; non-float is always clean).

    Notes
    -----
    Every rule of :func:`check_values` is a threshold, so it is evaluated on the
    extremes of ``flat`` only (two reductions instead of one pass per rule; NaN
    propagates through both): the same comparisons, in the array's own dtype.
    """
    if flat.dtype.kind != "f" or flat.size == 0:
        return True
    ext = np.array([flat.min(), flat.max()], dtype=flat.dtype)
    if not np.isfinite(ext).all():
        return False
    bad = False
    if field in ("pt", "mass"):  # pt < 0 is invalid, mass < 0 repaired or invalid
        bad |= bool((ext < 0).any() or (ext > MAX_ENERGY).any())
    if field == "eta" and collection in DETECTOR_COLLECTIONS:
        bad |= bool((np.abs(ext) > MAX_ABS_ETA).any())
    if field == "phi":  # wrapped or invalid
        bad |= bool((np.abs(ext) > _PI + _PHI_SLACK).any())
    return not bad


def check_unique_events(
    event: np.ndarray, where: str, *, seen: np.ndarray | None = None, raise_error: bool = True
) -> np.ndarray:
    """Refuse (or log) repeated event numbers.

    Parameters
    ----------
    event : (B,) uint64
        Event numbers of this chunk.
    where
        For the message.
    seen : (M,) uint64, sorted, optional
        Event numbers of earlier chunks of the same input.
    raise_error
        Raise :class:`DuplicateEventError` (default) or only log a warning.

    Returns
    -------
    np.ndarray
        Sorted union of ``seen`` and ``event`` (pass it back for the next chunk).
    """
    ev = np.asarray(event, dtype=np.uint64)
    if len(ev) and bool((ev[1:] > ev[:-1]).all()):  # increasing (files as written): no sort
        if seen is None:
            return ev.copy()
        if not len(seen) or ev[0] > seen[-1]:
            return np.concatenate([seen, ev])
    uniq, counts = np.unique(ev, return_counts=True)
    dup = uniq[counts > 1]
    if seen is not None and len(seen):
        dup = np.union1d(dup, np.intersect1d(uniq, seen, assume_unique=True))
    if len(dup):
        first = ", ".join(str(int(x)) for x in dup[:5]) + (", ..." if len(dup) > 5 else "")
        msg = (
            f"{where}: {len(dup)} event numbers occur more than once (e.g. {first}); "
            "hepvld keys per-event noise and train/test splits on the event number"
        )
        if raise_error:
            raise DuplicateEventError(
                f"{msg}: give every event a unique number (e.g. renumber the file) or pass "
                "on_duplicate='warn' to accept them (their draws then share noise)"
            )
        log.warning("%s (accepted: on_duplicate='warn')", msg)
    return uniq if seen is None else np.union1d(seen, uniq)
