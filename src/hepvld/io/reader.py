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

from hepvld.io.convert import as_event_array
from hepvld.io.errors import (
    CorruptFileError,
    HepvldIOError,
    InputFileNotFoundError,
    MissingBranchError,
    NotRootFileError,
    SchemaError,
    TreeNotFoundError,
    UnsupportedInputError,
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
from hepvld.io.validate import check_counts, check_dtype, check_unique_events, check_values

__all__ = [
    "SOURCE_ATTR",
    "OnDuplicate",
    "OnNonFinite",
    "SchemaName",
    "check_root_file",
    "chunk_ranges",
    "inspect_files",
    "iterate_events",
    "open_events",
    "resolve_paths",
]

vector.register_awkward()

#: Key of ``chunk.attrs`` naming where a chunk read from a file comes from (file, tree,
#: entry range), for errors raised by later steps (e.g. building targets).
SOURCE_ATTR = "hepvld_source"
log = logging.getLogger(__name__)

SchemaName = Literal["auto", "nanoaod", "delphes"]
OnNonFinite = Literal["raise", "drop", "ignore"]
OnDuplicate = Literal["raise", "warn"]

_BEHAVIOUR = {"MET": "Momentum2D", "GenMET": "Momentum2D"}
_LEPTONS = {
    "Electron": (11, ELECTRON_MASS, "pfRelIso03_all"),
    "Muon": (13, MUON_MASS, "pfRelIso04_all"),
}


# ----------------------------------------------------------------------------- sources
def resolve_paths(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """Expand a path, a glob pattern or a sequence of them into existing file paths.

    Raises
    ------
    InputFileNotFoundError
        A path does not exist or a pattern matches nothing.
    """
    if isinstance(source, (str, os.PathLike)):
        items = [source]
    elif isinstance(source, (list, tuple)):
        items = list(source)
    else:
        raise UnsupportedInputError(_unsupported(source))
    paths: list[str] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise UnsupportedInputError(_unsupported(item, "in a list of inputs"))
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


def _unsupported(obj: Any, context: str = "") -> str:
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    return (
        f"cannot read events from a {kind} {context}".rstrip()
        + "; pass a ROOT file path (or a list of paths / a glob pattern), an awkward array of "
        "events (zipped collections such as events.Jet.pt, or flat NanoAOD branches such as "
        "Jet_pt as read by uproot's tree.arrays()), a dict of such branches, or coffea "
        "NanoEvents"
    )


def _raised_in_uproot(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if "uproot" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def check_root_file(path: str) -> None:
    """Cheap checks of the ROOT header before uproot opens ``path``.

    Raises
    ------
    NotRootFileError
        Empty file, or the first bytes are not ``root`` (text, HDF5, ...).
    CorruptFileError
        The header's end-of-file pointer lies beyond the file size (truncated copy).
    """
    size = os.path.getsize(path)
    if size == 0:
        raise NotRootFileError(f"{path!r} is empty (0 bytes), not a ROOT file; re-copy it")
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:4] != b"root":
        text = head[:16].decode("ascii", "replace")
        looks = "text" if all(32 <= b < 127 or b in (9, 10, 13) for b in head[:16]) else "binary"
        raise NotRootFileError(
            f"{path!r} is not a ROOT file (it starts with {text!r}, {looks} data, not 'root'); "
            "pass the ROOT file itself"
        )
    if len(head) >= 16:
        version = int.from_bytes(head[4:8], "big")
        end = (
            int.from_bytes(head[12:16], "big")
            if version < 1_000_000
            else int.from_bytes(head[12:20], "big")
        )
        if end > size:
            raise CorruptFileError(
                f"{path!r} is truncated: its header says {end} bytes, the file has {size} "
                "(an interrupted copy or write); re-copy or regenerate it"
            )


@dataclass
class _Tree:
    path: str
    name: str
    tree: Any  # uproot.TTree
    schema: SchemaMap
    plan: dict[str, dict[str, tuple[str, FieldSpec]]]


def _open_tree(path: str, tree: str, schema: SchemaName, branches: Sequence[str] | None) -> _Tree:
    import uproot

    check_root_file(path)
    try:
        # No array cache: every chunk is read once, and uproot's default (100 MB per open
        # file) kept the arrays of past chunks, so a streaming read grew by ~0.4 kB per
        # event up to 100 MB for each input file (benchmarks/bench_unfold_rss.py).
        file = uproot.open(path, array_cache=None)
        classes = {k.split(";")[0]: c for k, c in file.classnames().items()}
    except Exception as exc:  # uproot raises several types for damaged input
        raise CorruptFileError(
            f"cannot read the directory of {path!r}: the file is damaged ({type(exc).__name__}: "
            f"{exc}); re-copy or regenerate it"
        ) from exc
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
            objects = ", ".join(f"{k} ({c})" for k, c in sorted(classes.items())) or "nothing"
            hint = (
                f"pass tree=... (CLI: --tree) with one of {trees}"
                if trees
                else "it holds no TTree at all: pass an event file (NanoAOD-like, Delphes)"
            )
            raise TreeNotFoundError(f"{path!r} has no tree {tree!r} (it holds {objects}); {hint}")
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
        names: dict[str, str] = {}
        for f, (src, spec) in fields.items():
            raw = get(src, spec)
            names[f] = schema.branch(src, spec)
            check_dtype(raw, names[f], f, where)
            arr = _convert(raw, spec)
            cols[out][f] = _first(arr) if single else arr
        if not single:
            check_counts(cols[out], names, where)
    _complete(cols, n, offset, where, btag_wp)

    def branch_of(out: str, f: str) -> str:
        src, spec = plan.get(out, {}).get(f, (out, f))
        return schema.branch(src, spec)

    keep = check_values(cols, branch_of, n, offset, where, on_nonfinite)
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
    try:
        return _assemble(plan, get, chosen, len(source), start, where, on_nonfinite, btag_wp)
    except (SchemaError, HepvldIOError):
        raise
    except Exception as exc:  # e.g. awkward broadcasting of ragged fields
        if _raised_in_uproot(exc):  # a lazily read (NanoEvents) file failed to decompress
            raise CorruptFileError(
                f"{where}: reading entries {start}-{stop} of this array failed in uproot "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): "
                "the file behind it is damaged; re-copy or regenerate it"
            ) from exc
        raise SchemaError(
            f"{where}: cannot build events from entries {start}-{stop} of this array "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): "
            "its collections are inconsistent"
        ) from exc


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


def _arrays(t: _Tree, lo: int, hi: int) -> dict[str, Any]:
    """Read entries ``[lo, hi)`` of the planned branches; damaged baskets -> CorruptFileError."""
    try:
        return t.tree.arrays(_branch_names(t), entry_start=lo, entry_stop=hi, how=dict)
    except Exception as exc:  # uproot/zstd/awkward raise many types for damaged baskets
        raise CorruptFileError(
            f"{t.path!r}, tree {t.name!r}: cannot read entries {lo}-{hi}: the file is damaged "
            f"or truncated ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            "; re-copy or regenerate it"
        ) from exc


def _read(
    t: _Tree, lo: int, hi: int, offset: int, on_nonfinite: OnNonFinite, btag_wp: float
) -> ak.Array:
    arrays = _arrays(t, lo, hi)

    def get(coll: str, spec: FieldSpec) -> Any:
        return arrays[t.schema.branch(coll, spec)]

    where = f"{t.path!r}, tree {t.name!r}"
    chunk = _assemble(t.plan, get, t.schema, hi - lo, offset + lo, where, on_nonfinite, btag_wp)
    chunk.attrs[SOURCE_ATTR] = f"{where}, entries {lo}-{hi}"  # for errors found later
    return chunk


class _Unique:
    """Running check that event numbers do not repeat: within a file (error unless
    ``on_duplicate='warn'``) and across files (warning: files of different generator seeds
    may repeat numbers; docs/readers.md)."""

    def __init__(self, on_duplicate: OnDuplicate) -> None:
        if on_duplicate not in ("raise", "warn"):
            raise ValueError(f"on_duplicate={on_duplicate!r}; choose 'raise' or 'warn'")
        self.strict = on_duplicate == "raise"
        self.file: np.ndarray | None = None
        self.earlier: np.ndarray | None = None

    def new_file(self) -> None:
        if self.file is not None:
            self.earlier = (
                self.file if self.earlier is None else np.union1d(self.earlier, self.file)
            )
        self.file = None

    def add(self, events: ak.Array, where: str) -> None:
        if "event" not in ak.fields(events) or len(events) == 0:
            return
        self.add_numbers(np.asarray(ak.to_numpy(events["event"]), dtype=np.uint64), where)

    def add_numbers(self, numbers: np.ndarray, where: str) -> None:
        """:meth:`add` of a chunk's ``(B,)`` uint64 event numbers."""
        if len(numbers) == 0:
            return
        self.file = check_unique_events(numbers, where, seen=self.file, raise_error=self.strict)
        if self.earlier is not None:
            check_unique_events(
                numbers, f"{where} and the files before it", seen=self.earlier, raise_error=False
            )


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
    on_duplicate: OnDuplicate = "raise",
    btag_wp: float = DEEPJET_MEDIUM_WP,
) -> ak.Array:
    """Read events into hepvld's NanoAOD-like layout.

    Parameters
    ----------
    source
        A path, glob pattern, sequence of paths (concatenated in order), an ``ak.Array`` or
        a coffea ``NanoEventsArray`` (anything with collection fields such as ``.Jet``).
        ``.h5`` / ``.hdf5`` paths are read as the VL-VLD R&D dataset
        (:func:`hepvld.io.lvd.open_lvd`).
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
        NaN/inf or physically impossible values (negative pT, > 100 TeV, |η| > 10, ...;
        :mod:`hepvld.io.validate`): ``"raise"`` :class:`NonFiniteError` /
        :class:`InvalidValueError` (default), ``"drop"`` the affected events (logged per
        branch with the total), or ``"ignore"`` (logged).
    on_duplicate
        Event numbers repeated within a file: ``"raise"`` :class:`DuplicateEventError`
        (default) or ``"warn"``. Repeats across files are always only logged.
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
    HepvldIOError
        :class:`InputFileNotFoundError`, :class:`NotRootFileError`,
        :class:`CorruptFileError`, :class:`TreeNotFoundError`, :class:`MissingBranchError`,
        :class:`SchemaError`, :class:`NonFiniteError`, :class:`InvalidValueError`,
        :class:`DuplicateEventError`, :class:`UnsupportedInputError`: with the file,
        tree, branch or value named in the message (table in docs/reliability.md).
    """
    t0 = time.perf_counter()
    unique = _Unique(on_duplicate)
    array = as_event_array(source)
    if array is not None:
        events = _from_array(
            array, schema, branches, on_nonfinite, btag_wp, entry_start, entry_stop
        )
        unique.add(events, f"awkward input ({type(source).__name__})")
        return events
    from hepvld.io.lvd import is_lvd_path, open_lvd

    if is_lvd_path(source):  # the VL-VLD R&D dataset (HDF5)
        return open_lvd(
            source,
            entry_start=entry_start,
            entry_stop=entry_stop,
            on_nonfinite=on_nonfinite,
            on_duplicate=on_duplicate,
            btag_wp=btag_wp,
        )
    paths = resolve_paths(source)
    trees = [_open_tree(p, tree, schema, branches) for p in paths]
    parts: list[ak.Array] = []
    try:
        ranges = _ranges([t.tree.num_entries for t in trees], entry_start, entry_stop)
        for t, (lo, hi, offset) in zip(trees, ranges):
            if hi <= lo and parts:
                continue
            parts.append(_read(t, lo, hi, offset, on_nonfinite, btag_wp))
            unique.new_file()
            unique.add(parts[-1], f"{t.path!r}, tree {t.name!r}")
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
    on_duplicate: OnDuplicate = "raise",
    btag_wp: float = DEEPJET_MEDIUM_WP,
) -> Iterator[ak.Array]:
    """Yield chunks of at most ``step_size`` events (never spanning two files).

    Same arguments and output layout as :func:`open_events`; use it for files that do not
    fit in memory. An awkward input is sliced into chunks.
    """
    if step_size < 1:
        raise ValueError(f"step_size must be >= 1, got {step_size}")
    unique = _Unique(on_duplicate)
    array = as_event_array(source)
    if array is not None:
        start, stop, _ = slice(entry_start, entry_stop).indices(len(array))
        for lo in range(start, stop, step_size):
            chunk = _from_array(
                array, schema, branches, on_nonfinite, btag_wp, lo, min(lo + step_size, stop)
            )
            unique.add(chunk, f"awkward input ({type(source).__name__})")
            yield chunk
        return
    from hepvld.io.lvd import is_lvd_path, iterate_lvd

    if is_lvd_path(source):  # the VL-VLD R&D dataset (HDF5)
        yield from iterate_lvd(
            source,
            step_size=step_size,
            entry_start=entry_start,
            entry_stop=entry_stop,
            on_nonfinite=on_nonfinite,
            on_duplicate=on_duplicate,
            btag_wp=btag_wp,
        )
        return
    trees = [_open_tree(p, tree, schema, branches) for p in resolve_paths(source)]
    try:
        ranges = _ranges([t.tree.num_entries for t in trees], entry_start, entry_stop)
        for t, (lo, hi, offset) in zip(trees, ranges):
            unique.new_file()
            for c0 in range(lo, hi, step_size):
                c1 = min(c0 + step_size, hi)
                chunk = _read(t, c0, c1, offset, on_nonfinite, btag_wp)
                unique.add(chunk, f"{t.path!r}, tree {t.name!r}")
                yield chunk
    finally:
        for t in trees:
            t.tree.file.close()


def chunk_ranges(
    source: Any,
    *,
    step_size: int = 100_000,
    tree: str = "Events",
    entry_start: int | None = None,
    entry_stop: int | None = None,
) -> list[tuple[int, int]]:
    """Global entry ranges ``[lo, hi)`` (over the concatenated files) of the chunks that
    :func:`iterate_events` yields for the same files and arguments, in order.

    Only the trees' entry counts are read. Used to record how far a chunked job got
    (``hepvld unfold --resume``), since a chunk's length after ``on_nonfinite="drop"`` is
    not the number of entries it consumed.
    """
    if step_size < 1:
        raise ValueError(f"step_size must be >= 1, got {step_size}")
    counts = []
    for path in resolve_paths(source):
        t = _open_tree(path, tree, "auto", None)
        try:
            counts.append(int(t.tree.num_entries))
        finally:
            t.tree.file.close()
    return [
        (offset + c0, offset + min(c0 + step_size, hi))
        for lo, hi, offset in _ranges(counts, entry_start, entry_stop)
        for c0 in range(lo, hi, step_size)
    ]


def inspect_files(
    source: Any,
    *,
    tree: str = "Events",
    schema: SchemaName = "auto",
    check_entries: int = 1000,
) -> list[dict[str, Any]]:
    """Open every input file and validate it without reading it all (``train --dry-run``).

    Each file is opened (``.h5`` / ``.hdf5``: the VL-VLD dataset layout,
    :func:`hepvld.io.lvd.inspect_lvd`), its tree and schema resolved, the required branches checked and
    its first ``check_entries`` entries read and validated like :func:`open_events` does
    (types, jagged counts, finite and physical values, unique event numbers).

    Returns
    -------
    list of dict
        Per file: ``path``, ``tree``, ``schema``, ``entries``.

    Raises
    ------
    HepvldIOError
        As :func:`open_events`, naming the file.
    """
    from hepvld.io.lvd import inspect_lvd, is_lvd_path

    out = []
    for path in resolve_paths(source):
        if is_lvd_path(path):
            out.append(inspect_lvd(path, check_entries=check_entries))
            continue
        t = _open_tree(path, tree, schema, None)
        try:
            n = int(t.tree.num_entries)
            chunk = _read(t, 0, min(n, check_entries), 0, "raise", DEEPJET_MEDIUM_WP)
            _Unique("raise").add(chunk, f"{path!r}, tree {t.name!r}")
        finally:
            t.tree.file.close()
        out.append({"path": path, "tree": t.name, "schema": t.schema.name, "entries": n})
    return out
