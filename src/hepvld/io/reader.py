"""Open ROOT files (ours, CMS NanoAOD, Delphes) or awkward arrays as hepvld events.

All uproot code of hepvld lives here. Every input path goes through the same steps:

1. resolve the tree (``Events``; a Delphes file is recognised by its ``Delphes`` tree),
2. pick the schema map (:mod:`hepvld.io.schemas`) and check that the branches exist,
3. read the branches and assemble NanoAOD-named collections,
4. complete missing fields with documented rules (b-tag working point, lepton masses,
   ``genWeight`` = 1, ...), each logged,
5. check for NaN / inf (raise, drop or ignore).

The result is an ``ak.Array`` of records; four-momentum collections carry the ``vector``
``Momentum4D`` behaviour (``events.Jet.px`` works), ``MET`` / ``GenMET`` ``Momentum2D``.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import awkward as ak
import numpy as np
import vector

from hepvld.io.errors import (
    InputFileNotFoundError,
    MissingBranchError,
    NonFiniteError,
    SchemaError,
    TreeNotFoundError,
)
from hepvld.io.schemas import (
    DEEPJET_MEDIUM_WP,
    DELPHES,
    ELECTRON_MASS,
    MUON_MASS,
    NANOAOD,
    SCHEMAS,
    FieldSpec,
    SchemaMap,
)

__all__ = ["OnNonFinite", "SchemaName", "iterate_events", "open_events", "resolve_paths"]

vector.register_awkward()
log = logging.getLogger(__name__)

SchemaName = Literal["auto", "nanoaod", "delphes"]
OnNonFinite = Literal["raise", "drop", "ignore"]

_BEHAVIOUR = {"MET": "Momentum2D", "GenMET": "Momentum2D"}
_LEPTONS = {
    "Electron": (11, ELECTRON_MASS, "pfRelIso03_all"),
    "Muon": (13, MUON_MASS, "pfRelIso04_all"),
}


# ----------------------------------------------------------------------------- sources
def _is_event_array(source: Any) -> bool:
    """Duck typing: an awkward / coffea array of events has ``fields`` with collections."""
    fields = getattr(source, "fields", None)
    return isinstance(fields, list) and any(
        name in fields for name in ("Jet", "GenPart", "Particle", "Electron", "Muon")
    )


def resolve_paths(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """Expand a path, a glob pattern or a sequence of them into existing file paths.

    Raises
    ------
    InputFileNotFoundError
        A path does not exist or a pattern matches nothing.
    """
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    paths: list[str] = []
    for item in items:
        text = os.fspath(item)
        if any(c in text for c in "*?["):
            matched = sorted(glob.glob(text))
            if not matched:
                raise InputFileNotFoundError(f"no file matches the pattern {text!r}")
            paths.extend(matched)
        elif not os.path.isfile(text):
            raise InputFileNotFoundError(f"input file {text!r} does not exist")
        else:
            paths.append(text)
    return paths


@dataclass
class _Tree:
    path: str
    name: str
    tree: Any  # uproot.TTree
    schema: SchemaMap
    plan: dict[str, dict[str, tuple[str, FieldSpec]]]


def _open_tree(path: str, tree: str, schema: SchemaName, branches: Sequence[str] | None) -> _Tree:
    import uproot

    try:
        file = uproot.open(path)
    except Exception as exc:  # uproot raises several types for non-ROOT input
        raise InputFileNotFoundError(f"cannot open {path!r} as a ROOT file: {exc}") from exc
    classes = {k.split(";")[0]: c for k, c in file.classnames().items()}
    trees = sorted(k for k, c in classes.items() if c == "TTree")
    if classes.get(tree) == "ROOT::RNTuple":
        raise SchemaError(
            f"{path!r}: {tree!r} is an RNTuple; hepvld reads TTrees (write "
            "them with uproot's mktree, see docs/schema.md)"
        )
    name = tree
    if name not in trees:
        if schema in ("auto", "delphes") and tree == "Events" and DELPHES.tree in trees:
            name = DELPHES.tree
        else:
            raise TreeNotFoundError(
                f"{path!r} has no tree {tree!r}; trees present: {trees or 'none'}"
            )
    ttree = file[name]
    names = set(ttree.keys(recursive=True, full_paths=False))
    if schema == "auto":
        is_delphes = any(n in names for n in ("Jet.PT", "Particle.PID", "Jet_size"))
        chosen = DELPHES if is_delphes else NANOAOD
    else:
        try:
            chosen = SCHEMAS[schema]
        except KeyError:
            raise SchemaError(
                f"unknown schema {schema!r}; choose 'auto' or one of {sorted(SCHEMAS)}"
            ) from None
    plan = _plan(
        chosen, lambda c, f: chosen.branch(c, f) in names, branches, f"{path!r}, tree {name!r}"
    )
    return _Tree(path, name, ttree, chosen, plan)


# ----------------------------------------------------------------------------- planning
def _wanted(schema: SchemaMap, branches: Sequence[str] | None) -> set[str]:
    known = set(schema.collections) | set(schema.event_fields) | {"genWeight", "event"}
    if branches is None:
        return known
    unknown = sorted(set(branches) - known - {"GenDressedLepton"})
    if unknown:
        raise ValueError(f"unknown collections/fields {unknown}; known: {sorted(known)}")
    return set(branches)


def _plan(
    schema: SchemaMap,
    has: Callable[[str, FieldSpec], bool],
    branches: Sequence[str] | None,
    where: str,
) -> dict[str, dict[str, tuple[str, FieldSpec]]]:
    """Output collection -> output field -> (source collection, spec) for what will be read.

    ``""`` is the key of per-event fields. Raises :class:`MissingBranchError` listing every
    missing required branch.
    """
    wanted = _wanted(schema, branches)
    plan: dict[str, dict[str, tuple[str, FieldSpec]]] = {"": {}}
    missing: list[str] = []
    for out, cmap in schema.collections.items():
        if out not in wanted:
            continue
        absent = [
            schema.branch(cmap.source, s) for s in cmap.fields.values() if not has(cmap.source, s)
        ]
        if absent and not cmap.required and len(absent) == len(cmap.fields):
            log.info("%s: no %s collection (%s ...), skipped", where, out, absent[0])
            continue
        missing.extend(absent)
        plan[out] = {f: (cmap.source, s) for f, s in cmap.fields.items()}
        plan[out].update(
            {f: (cmap.source, s) for f, s in cmap.optional.items() if has(cmap.source, s)}
        )
    for out, (src, spec) in schema.event_fields.items():
        if out in wanted and has(src, spec):
            plan[""][out] = (src, spec)
    if missing:
        raise MissingBranchError(
            f"{where} ({schema.name} schema) lacks required branches: {missing}", missing
        )
    return plan


# ----------------------------------------------------------------------------- assembly
def _convert(array: Any, spec: FieldSpec) -> Any:
    if isinstance(spec, str):
        return array
    conv = spec[1]
    if conv == "bool":
        return ak.values_astype(array, bool)
    if conv == "bit0":
        return np.bitwise_and(array, 1) != 0
    # "first": Delphes stores singletons as length-1 lists
    return _first(array)


def _first(array: Any) -> Any:
    if array.ndim > 1:
        return ak.fill_none(ak.firsts(array, axis=1), np.nan)
    return array


def _complete(
    cols: dict[str, dict[str, Any]], n: int, offset: int, where: str, btag_wp: float
) -> None:
    """Fill documented defaults for fields a source does not store (in place)."""
    jet = cols.get("Jet")
    if jet is not None and "btagged" not in jet:
        if "btagDeepFlavB" not in jet:
            raise MissingBranchError(
                f"{where}: no b-tag information: need Jet_btagged, Jet_btagDeepFlavB "
                "(NanoAOD) or Jet.BTag (Delphes)",
                ["Jet_btagged"],
            )
        jet["btagged"] = jet["btagDeepFlavB"] > btag_wp
        log.info("%s: Jet.btagged from DeepJet btagDeepFlavB > %g", where, btag_wp)
    for name, (code, mass, iso) in _LEPTONS.items():
        lep = cols.get(name)
        if lep is None:
            continue
        if "mass" not in lep:
            lep["mass"] = ak.values_astype(lep["pt"] * 0 + mass, np.float32)
        if "pdgId" not in lep and "charge" in lep:
            lep["pdgId"] = ak.values_astype(-code * lep["charge"], np.int32)
        if "charge" not in lep and "pdgId" in lep:
            lep["charge"] = ak.values_astype(-np.sign(lep["pdgId"]), np.int32)
        if iso not in lep:
            lep[iso] = ak.values_astype(lep["pt"] * 0, np.float32)
            log.info(
                "%s: no %s isolation branch; %s treated as isolated (set to 0)", where, name, iso
            )
    ev = cols[""]
    if "event" not in ev:
        ev["event"] = np.arange(offset, offset + n, dtype=np.uint64)
        log.warning(
            "%s: no event-number branch; using the entry index (splits by event number "
            "are then not stable against re-ordering)",
            where,
        )
    else:
        ev["event"] = ak.values_astype(ev["event"], np.uint64)
    if "genWeight" not in ev:
        ev["genWeight"] = np.ones(n, dtype=np.float32)
        log.info("%s: no genWeight branch; all event weights set to 1.0", where)


def _assemble(
    plan: dict[str, dict[str, tuple[str, FieldSpec]]],
    get: Callable[[str, FieldSpec], Any],
    schema: SchemaMap,
    n: int,
    offset: int,
    where: str,
    on_nonfinite: OnNonFinite,
    btag_wp: float,
) -> ak.Array:
    cols: dict[str, dict[str, Any]] = {}
    for out, fields in plan.items():
        single = out == "" or schema.collections[out].singleton
        cols[out] = {}
        for f, (src, spec) in fields.items():
            arr = _convert(get(src, spec), spec)
            cols[out][f] = _first(arr) if single else arr
    _complete(cols, n, offset, where, btag_wp)
    keep = _check_finite(cols, plan, schema, n, offset, where, on_nonfinite)
    record: dict[str, Any] = {}
    for out, fields in cols.items():
        if out == "":
            continue
        name = _BEHAVIOUR.get(out, "Momentum4D")
        record[out] = ak.zip(fields, with_name=name)
    for f, arr in cols[""].items():
        record[f] = arr
    events = ak.zip(record, depth_limit=1) if record else ak.Array(np.empty(n))
    if keep is not None:
        events = events[keep]
    return events


def _check_finite(
    cols: dict[str, dict[str, Any]],
    plan: dict[str, dict[str, tuple[str, FieldSpec]]],
    schema: SchemaMap,
    n: int,
    offset: int,
    where: str,
    on_nonfinite: OnNonFinite,
) -> np.ndarray | None:
    if on_nonfinite == "ignore" or n == 0:
        return None
    bad_any = np.zeros(n, dtype=bool)
    for out, fields in cols.items():
        for f, arr in fields.items():
            layout_arr = ak.Array(arr) if not isinstance(arr, ak.Array) else arr
            flat = ak.to_numpy(ak.flatten(layout_arr, axis=None))
            if flat.dtype.kind != "f" or np.isfinite(flat).all():
                continue
            bad = ~np.isfinite(layout_arr)
            per_event = (
                ak.to_numpy(ak.any(bad, axis=-1)) if layout_arr.ndim > 1 else ak.to_numpy(bad)
            )
            src, spec = plan.get(out, {}).get(f, (out, f))
            branch = schema.branch(src, spec)
            first = int(np.flatnonzero(per_event)[0]) + offset
            msg = (
                f"{where}: branch {branch!r} has {int((~np.isfinite(flat)).sum())} NaN/inf "
                f"values in {int(per_event.sum())} of {n} events (first at entry {first})"
            )
            if on_nonfinite == "raise":
                raise NonFiniteError(msg + "; pass on_nonfinite='drop' to skip those events")
            log.warning("%s; dropping those events", msg)
            bad_any |= per_event
    if not bad_any.any():
        return None
    log.warning("%s: dropped %d of %d events with NaN/inf inputs", where, int(bad_any.sum()), n)
    return ~bad_any


def _from_array(
    source: Any,
    schema: SchemaName,
    branches: Sequence[str] | None,
    on_nonfinite: OnNonFinite,
    btag_wp: float,
    entry_start: int | None,
    entry_stop: int | None,
) -> ak.Array:
    fields = set(source.fields)
    if schema == "auto":
        delphes = "Particle" in fields or ("Jet" in fields and "PT" in source["Jet"].fields)
        chosen = DELPHES if delphes else NANOAOD
    else:
        chosen = SCHEMAS[schema]

    def has(coll: str, spec: FieldSpec) -> bool:
        name = spec if isinstance(spec, str) else spec[0]
        if not coll:
            return name in fields
        return coll in fields and name in source[coll].fields

    def get(coll: str, spec: FieldSpec) -> Any:
        name = spec if isinstance(spec, str) else spec[0]
        return source[name] if not coll else source[coll][name]

    where = f"awkward input ({type(source).__name__})"
    n_total = len(source)
    start, stop, _ = slice(entry_start, entry_stop).indices(n_total)
    if (start, stop) != (0, n_total):
        source = source[start:stop]
    plan = _plan(chosen, has, branches, where)
    return _assemble(plan, get, chosen, len(source), start, where, on_nonfinite, btag_wp)


# ----------------------------------------------------------------------------- public API
def _ranges(counts: list[int], start: int | None, stop: int | None) -> list[tuple[int, int, int]]:
    """Global [start, stop) over concatenated files -> per-file (local start, stop, offset)."""
    total = sum(counts)
    g0, g1, _ = slice(start, stop).indices(total)
    out, offset = [], 0
    for c in counts:
        lo, hi = max(g0 - offset, 0), min(g1 - offset, c)
        out.append((lo, max(lo, hi), offset))
        offset += c
    return out


def _branch_names(t: _Tree) -> list[str]:
    return sorted({t.schema.branch(src, spec) for f in t.plan.values() for src, spec in f.values()})


def _read(
    t: _Tree, arrays: dict[str, Any], n: int, offset: int, on_nonfinite: OnNonFinite, btag_wp: float
) -> ak.Array:
    def get(coll: str, spec: FieldSpec) -> Any:
        return arrays[t.schema.branch(coll, spec)]

    where = f"{t.path!r}, tree {t.name!r}"
    return _assemble(t.plan, get, t.schema, n, offset, where, on_nonfinite, btag_wp)


def _concatenate(parts: list[ak.Array]) -> ak.Array:
    if len(parts) == 1:
        return parts[0]
    common = set(parts[0].fields)
    for p in parts[1:]:
        common &= set(p.fields)
    if any(set(p.fields) != common for p in parts):
        log.warning("inputs differ in collections; keeping the common ones: %s", sorted(common))
        parts = [p[sorted(common, key=parts[0].fields.index)] for p in parts]
    return ak.concatenate(parts, axis=0)


def open_events(
    source: Any,
    *,
    tree: str = "Events",
    schema: SchemaName = "auto",
    entry_start: int | None = None,
    entry_stop: int | None = None,
    branches: Sequence[str] | None = None,
    on_nonfinite: OnNonFinite = "raise",
    btag_wp: float = DEEPJET_MEDIUM_WP,
) -> ak.Array:
    """Read events into hepvld's NanoAOD-like layout.

    Parameters
    ----------
    source
        A path, glob pattern, sequence of paths (concatenated in order), an ``ak.Array`` or
        a coffea ``NanoEventsArray`` (anything with collection fields such as ``.Jet``).
    tree
        Tree name; a file without ``Events`` but with a ``Delphes`` tree is read as Delphes.
    schema
        ``"auto"`` (Delphes if ``Jet.PT``/``Particle.PID`` branches exist, else NanoAOD),
        ``"nanoaod"`` (hepvld files and CMS NanoAOD) or ``"delphes"``.
    entry_start, entry_stop
        Global entry range over the concatenated inputs (Python slice semantics).
    branches
        Subset of output collections / fields to read (e.g. ``("Jet", "MET", "event")``);
        all by default.
    on_nonfinite
        NaN/inf in a float branch: ``"raise"`` :class:`NonFiniteError` (default),
        ``"drop"`` the affected events (logged), or ``"ignore"``.
    btag_wp
        DeepJet threshold used when ``Jet_btagged`` is absent (NanoAOD).

    Returns
    -------
    ak.Array
        ``B`` records with collections ``Jet``, ``Electron``, ``Muon``, ``MET`` and, when
        present, ``GenPart``, ``GenJet``, ``GenDressedLepton``, ``GenMET``; fields
        ``event`` (uint64) and ``genWeight`` (1.0 when absent, logged).

    Raises
    ------
    InputFileNotFoundError, TreeNotFoundError, MissingBranchError, NonFiniteError
        With the file, tree, branch or value named in the message.
    """
    t0 = time.perf_counter()
    if _is_event_array(source):
        return _from_array(source, schema, branches, on_nonfinite, btag_wp, entry_start, entry_stop)
    paths = resolve_paths(source)
    trees = [_open_tree(p, tree, schema, branches) for p in paths]
    parts: list[ak.Array] = []
    try:
        ranges = _ranges([t.tree.num_entries for t in trees], entry_start, entry_stop)
        for t, (lo, hi, offset) in zip(trees, ranges):
            if hi <= lo and parts:
                continue
            arrays = t.tree.arrays(_branch_names(t), entry_start=lo, entry_stop=hi, how=dict)
            parts.append(_read(t, arrays, hi - lo, offset + lo, on_nonfinite, btag_wp))
    finally:
        for t in trees:
            t.tree.file.close()
    events = _concatenate(parts)
    log.info(
        "read %d events from %d file(s) (%s schema) in %.2f s",
        len(events),
        len(paths),
        trees[0].schema.name,
        time.perf_counter() - t0,
    )
    return events


def iterate_events(
    source: Any,
    *,
    step_size: int = 100_000,
    tree: str = "Events",
    schema: SchemaName = "auto",
    entry_start: int | None = None,
    entry_stop: int | None = None,
    branches: Sequence[str] | None = None,
    on_nonfinite: OnNonFinite = "raise",
    btag_wp: float = DEEPJET_MEDIUM_WP,
) -> Iterator[ak.Array]:
    """Yield chunks of at most ``step_size`` events (never spanning two files).

    Same arguments and output layout as :func:`open_events`; use it for files that do not
    fit in memory. An awkward input is sliced into chunks.
    """
    if step_size < 1:
        raise ValueError(f"step_size must be >= 1, got {step_size}")
    if _is_event_array(source):
        start, stop, _ = slice(entry_start, entry_stop).indices(len(source))
        for lo in range(start, stop, step_size):
            yield _from_array(
                source, schema, branches, on_nonfinite, btag_wp, lo, min(lo + step_size, stop)
            )
        return
    trees = [_open_tree(p, tree, schema, branches) for p in resolve_paths(source)]
    try:
        ranges = _ranges([t.tree.num_entries for t in trees], entry_start, entry_stop)
        for t, (lo, hi, offset) in zip(trees, ranges):
            for c0 in range(lo, hi, step_size):
                c1 = min(c0 + step_size, hi)
                arrays = t.tree.arrays(_branch_names(t), entry_start=c0, entry_stop=c1, how=dict)
                yield _read(t, arrays, c1 - c0, offset + c0, on_nonfinite, btag_wp)
    finally:
        for t in trees:
            t.tree.file.close()
