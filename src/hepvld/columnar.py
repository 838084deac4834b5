"""The columnar path of :func:`hepvld.data.load_tensors`: ROOT branches -> tensors.

The event path reads every branch into awkward event records (``open_events``), selects
on them, then flattens them again for the tensors. This path reads only the 26 branches
the tensors need (:func:`hepvld.io.columns.iterate_columns`: offsets + flat contents)
and computes the selection, the detector tensors and the parton targets on the flat
arrays, with the same functions as the event path (:func:`~hepvld.features.selection.
object_ok`, :func:`~hepvld.features.selection.detector_cutflow`,
:func:`~hepvld.features.selection.truth_cut`,
:func:`~hepvld.features.detector.detector_tensors_flat`,
:func:`~hepvld.physics.partons.decay_chain_flat`,
:meth:`~hepvld.targets.parton.PartonLevel.from_chain`), so the tensors, cut-flows, logs
and errors are the event path's, bit for bit (``tests/test_columnar.py``).

The decay chain is searched only in the events passing the detector cuts (it is per
event; the one chunk-wide input, whether ``statusFlags`` are used, is decided on the
whole chunk as the event path's ``select`` does), and the kinematics are gathered only
for the entries the chain needs.

Covered (:func:`unsupported` says why not otherwise, and ``load_tensors`` then takes the
event path): ROOT files (hepvld, NanoAOD, Delphes), the ``parton`` level with any options
(or no truth at all), the reader options ``tree``, ``schema``, ``entry_start``,
``on_nonfinite``, ``on_duplicate``, ``btag_wp``. Chunks the columnar read hands to the
event reader (invalid values, odd branches) go through the event path's
``_tensors_of``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from hepvld.data import EventTensors
from hepvld.features.detector import FlatObjects, detector_tensors_flat
from hepvld.features.selection import (
    PAPER_CUTS,
    Cutflow,
    detector_cutflow,
    object_ok,
    truth_cut,
)
from hepvld.io.columns import ColumnChunk
from hepvld.io.errors import MissingBranchError, TruthError
from hepvld.physics.partons import DecayChain, decay_chain_flat, has_hard_process_flag
from hepvld.targets.base import TargetLevel
from hepvld.targets.parton import PartonLevel

__all__ = ["READER_OPTIONS", "WANTED", "tensors_of_columns", "unsupported", "wanted"]

_P4 = ("pt", "eta", "phi", "mass")
#: Branches (hepvld names) the tensors need: collection -> fields (``""``: per event).
WANTED: Mapping[str, tuple[str, ...]] = {
    "Jet": (*_P4, "btagged"),
    "Electron": (*_P4, "pfRelIso03_all"),
    "Muon": (*_P4, "pfRelIso04_all"),
    "MET": ("pt", "phi"),
    "GenPart": (*_P4, "pdgId", "genPartIdxMother", "statusFlags"),
    "": ("event", "genWeight"),
}
#: ``load_tensors`` reader options the columnar path honours.
READER_OPTIONS: frozenset[str] = frozenset(
    {"tree", "schema", "entry_start", "on_nonfinite", "on_duplicate", "btag_wp"}
)


def wanted(require_truth: bool) -> dict[str, tuple[str, ...]]:
    """:data:`WANTED`, without ``GenPart`` when no truth is built."""
    return {k: v for k, v in WANTED.items() if require_truth or k != "GenPart"}


def unsupported(
    source: Any, level: TargetLevel, require_truth: bool, options: Mapping[str, Any]
) -> str | None:
    """Why the columnar path cannot build these tensors, or ``None`` when it can."""
    from hepvld.io.lvd import is_lvd_path

    items = [source] if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(items, (list, tuple)) or not items:
        return f"the input is a {type(source).__name__}, not ROOT file paths"
    if not all(isinstance(p, (str, os.PathLike)) for p in items):
        return "the input list holds something other than paths"
    if is_lvd_path(source):
        return "HDF5 (VL-VLD dataset) input"
    if require_truth and type(level) is not PartonLevel:
        return f"the {getattr(level, 'name', type(level).__name__)!r} target level"
    other = sorted(set(options) - READER_OPTIONS)
    if other:
        return f"reader options {other}"
    return None


def _segment_sum(flag: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``(B,)`` number of true entries of ``flag (P,)`` per event (``offsets (B+1,)``)."""
    cs = np.zeros(len(flag) + 1, dtype=np.int64)
    np.cumsum(flag, out=cs[1:])
    return cs[offsets[1:]] - cs[offsets[:-1]]


def _entries(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(index, counts)``: flat indices of the entries of events ``rows`` (in order) and
    their numbers per event."""
    counts = offsets[rows + 1] - offsets[rows]
    starts = np.cumsum(counts) - counts
    index = np.arange(int(counts.sum())) + np.repeat(offsets[rows] - starts, counts)
    return index, counts


def _objects(
    chunk: ColumnChunk, coll: str, ok: np.ndarray, keep_event: np.ndarray, flag: float | np.ndarray
) -> FlatObjects:
    """The objects ``ok`` of the events ``keep_event (B,)``, events renumbered 0..K-1."""
    new_row = np.where(keep_event, np.cumsum(keep_event) - 1, -1)
    row = np.repeat(new_row, np.diff(chunk.offsets[coll]))
    idx = np.flatnonzero(ok & (row >= 0))
    col = chunk.values[coll]
    pt, eta, phi, mass = (np.asarray(col[k][idx], dtype=np.float64) for k in _P4)
    values = (
        np.full(len(idx), flag, dtype=np.float64)
        if isinstance(flag, float)
        else np.asarray(np.asarray(flag)[idx], dtype=np.float64)
    )
    return FlatObjects(row[idx], pt, eta, phi, mass, values)


def _chain(chunk: ColumnChunk, rows: np.ndarray, tops: str) -> DecayChain:
    """Decay chain of the events ``rows`` (the event path's ``decay_chain``, per event)."""
    if "GenPart" not in chunk.values:
        raise MissingBranchError(
            "events have no GenPart collection: truth is unavailable", ["GenPart"]
        )
    gp = chunk.values["GenPart"]
    offsets = chunk.offsets["GenPart"]
    if len(rows) == chunk.n:  # every event (files of selected events): no gather
        idx, counts = None, np.diff(offsets)
    else:
        idx, counts = _entries(offsets, rows)

    def take(a: np.ndarray) -> np.ndarray:
        return a if idx is None else a[idx]

    flags = gp.get("statusFlags")
    use_flags = None
    sub_flags = None
    if flags is not None and len(flags):
        sub_flags = take(flags)
        # decided on the whole chunk, as select() does (the event path's targets decide
        # on the selected events: the same answer, valid events need flagged entries)
        use_flags = has_hard_process_flag(sub_flags) or has_hard_process_flag(flags)

    def kinematics(ix: np.ndarray) -> np.ndarray:
        g = ix if idx is None else idx[ix]
        return np.stack([np.asarray(gp[k][g], dtype=np.float64) for k in _P4], axis=-1)

    return decay_chain_flat(
        counts,
        take(gp["pdgId"]),
        take(gp["genPartIdxMother"]),
        kinematics,
        status_flags=sub_flags,
        use_status_flags=use_flags if counts.sum() else None,
        tops=tops,  # type: ignore[arg-type]
    )


def tensors_of_columns(
    chunk: ColumnChunk, max_jets: int, require_truth: bool, level: TargetLevel
) -> EventTensors:
    """The event path's ``_tensors_of`` on a columnar chunk (parton level or no truth).

    Parameters
    ----------
    chunk
        A columnar chunk of :func:`hepvld.io.columns.iterate_columns` read with
        :func:`wanted` fields.
    max_jets
        Jet slots; ``N = 1 + max_jets``.
    require_truth
        Require the semi-leptonic tt̄ chain and build ``level``'s targets.
    level
        A :class:`~hepvld.targets.parton.PartonLevel` (any options) when
        ``require_truth``.

    Returns
    -------
    EventTensors
        ``objects (B, N, 12)``, ``targets (B, 11, 5)`` (or ``None``) of the selected events.
    """
    if max_jets < 1:
        raise ValueError(f"max_jets must be >= 1, got {max_jets}")
    cuts = PAPER_CUTS
    v, off = chunk.values, chunk.offsets
    e, m, j = v["Electron"], v["Muon"], v["Jet"]
    w = np.asarray(v[""]["genWeight"], dtype=np.float64)
    e_ok = object_ok(e["pt"], e["eta"], cuts.lepton_pt_min, cuts.lepton_eta_max)
    e_ok = e_ok & (e["pfRelIso03_all"] < cuts.electron_iso_max)
    m_ok = object_ok(m["pt"], m["eta"], cuts.lepton_pt_min, cuts.lepton_eta_max)
    m_ok = m_ok & (m["pfRelIso04_all"] < cuts.muon_iso_max)
    j_ok = object_ok(j["pt"], j["eta"], cuts.jet_pt_min, cuts.jet_eta_max)
    n_lep = _segment_sum(e_ok, off["Electron"]) + _segment_sum(m_ok, off["Muon"])
    n_jet = _segment_sum(j_ok, off["Jet"])
    n_b = _segment_sum(j_ok & j["btagged"], off["Jet"])
    mask, cutflow = detector_cutflow(w, n_lep, n_jet, n_b, cuts)
    targets = None
    if require_truth:
        assert isinstance(level, PartonLevel)
        rows = np.flatnonzero(mask)
        try:
            chain = _chain(chunk, rows, level.tops)
            error = None
        except TruthError as err:  # after_isr without last copies: raised after the cut
            chain, error = _chain(chunk, rows, "hard"), err
        valid = np.zeros(chunk.n, dtype=bool)
        valid[rows] = chain.valid
        category = np.zeros(chunk.n, dtype=np.int8)
        category[rows] = chain.category
        mask = truth_cut(mask, valid, category, w, cutflow)
        if error is not None:
            raise TruthError(f"{chunk.where}: {error}") from None
        targets = level.from_chain(chain.take(chain.valid))
    sel = np.flatnonzero(mask)
    det = detector_tensors_flat(
        len(sel),
        [_objects(chunk, "Electron", e_ok, mask, 1.0), _objects(chunk, "Muon", m_ok, mask, 0.0)],
        _objects(chunk, "Jet", j_ok, mask, j["btagged"]),
        v["MET"]["pt"][sel],
        v["MET"]["phi"][sel],
        max_jets,
    )
    ones = np.ones(len(sel), dtype=bool)
    return EventTensors(
        objects=det.objects,
        mask=det.mask,
        globals=det.globals,
        targets=None if targets is None else targets.values,
        target_mask=None if targets is None else targets.mask,
        weights=np.asarray(v[""]["genWeight"][sel], dtype=np.float32),
        event=np.asarray(v[""]["event"][sel], dtype=np.uint64),
        cutflow=cutflow,
        pass_detector=ones,
        pass_truth=ones,
        phase_space=Cutflow(),
    )
