"""The paper's event selection with a mergeable cut-flow.

Selection (Shmakov et al. 2023, §4): exactly one isolated electron or muon with
pT > 25 GeV and |η| < 2.5; jets with pT > 25 GeV and |η| < 2.5; at least 4 such jets of
which at least 2 are b-tagged; optionally a valid semi-leptonic (e/μ) tt̄ chain in
``GenPart``. Isolation (CMS card): electron ``pfRelIso03_all < 0.12``, muon
``pfRelIso04_all < 0.25``. The b-tag decision is ``Jet.btagged`` as provided by
:func:`hepvld.io.open_events` (hepvld: ``Jet_btagged``; NanoAOD: DeepJet medium working
point; Delphes: bit 0 of ``Jet.BTag``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

__all__ = [
    "PAPER_CUTS",
    "Cutflow",
    "SelectionCuts",
    "detector_cutflow",
    "good_jets",
    "good_leptons",
    "object_ok",
    "select",
    "truth_cut",
]

log = logging.getLogger(__name__)


@dataclass
class Cutflow:
    """Ordered event counts (and sums of weights) after each cut.

    The one cut-flow of hepvld (selection of :func:`select`, the generator's
    :data:`hepvld.generate.selection.CUTS`, the processor's truth cut-flow). Picklable and
    mergeable with ``+`` (so that coffea can accumulate it over chunks); ``sum(cutflows)``
    works too. Cuts with the same name are added; new names are
    appended in order of first appearance.

    Attributes
    ----------
    names
        Cut names, in order (the first is usually ``"all events"``).
    counts
        Events passing all cuts up to and including each one.
    sumw
        Sum of ``genWeight`` of those events.
    """

    names: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    sumw: list[float] = field(default_factory=list)

    def add(self, name: str, count: int, sumw: float | None = None) -> None:
        """Append (or add to) the count of cut ``name``."""
        sw = float(count if sumw is None else sumw)
        if name in self.names:
            i = self.names.index(name)
            self.counts[i] += int(count)
            self.sumw[i] += sw
        else:
            self.names.append(name)
            self.counts.append(int(count))
            self.sumw.append(sw)

    def __add__(self, other: Cutflow) -> Cutflow:
        if not isinstance(other, Cutflow):
            return NotImplemented
        out = Cutflow(list(self.names), list(self.counts), list(self.sumw))
        for n, c, w in zip(other.names, other.counts, other.sumw):
            out.add(n, c, w)
        return out

    def __radd__(self, other: Any) -> Cutflow:
        if other == 0:  # sum() start value
            return Cutflow(list(self.names), list(self.counts), list(self.sumw))
        return self.__add__(other)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str) -> int:
        return self.counts[self.names.index(name)]

    @property
    def total(self) -> int:
        """Events before any cut (first entry; 0 if empty)."""
        return self.counts[0] if self.counts else 0

    @property
    def passed(self) -> int:
        """Events after all cuts (last entry; 0 if empty)."""
        return self.counts[-1] if self.counts else 0

    @classmethod
    def from_stages(cls, stage: Any, names: Sequence[str]) -> Cutflow:
        """Cut-flow of sequential cuts ``names`` from each event's last passed cut.

        ``stage (B,)`` int: index in ``names`` of the last cut an event passes
        (``stage >= k`` means cuts ``0..k`` passed); weights are the counts.
        """
        stage = np.asarray(stage)
        return cls(
            list(names),
            [int(np.count_nonzero(stage >= k)) for k in range(len(names))],
            [float(np.count_nonzero(stage >= k)) for k in range(len(names))],
        )

    def as_dict(self) -> dict[str, int]:
        """``{cut name: events passing}``, in order."""
        return dict(zip(self.names, self.counts))

    @classmethod
    def from_counts(cls, counts: dict[str, int]) -> Cutflow:
        """Inverse of :meth:`as_dict` (``{cut: events}``, as in a generated file's
        provenance): unweighted events, so the sums of weights are the counts."""
        return cls(
            list(counts), [int(c) for c in counts.values()], [float(c) for c in counts.values()]
        )

    def to_dict(self) -> dict[str, list[Any]]:
        """Plain JSON-serialisable dict."""
        return {"names": list(self.names), "counts": list(self.counts), "sumw": list(self.sumw)}

    @classmethod
    def from_dict(cls, d: dict[str, list[Any]]) -> Cutflow:
        """Inverse of :meth:`to_dict`."""
        return cls(list(d["names"]), [int(c) for c in d["counts"]], [float(w) for w in d["sumw"]])

    def __str__(self) -> str:
        width = max([len(n) for n in self.names] + [4])
        lines = [f"{'cut':<{width}}  {'events':>10}  {'sum w':>12}  {'eff.':>7}  {'cum.':>7}"]
        prev = total = self.total
        for n, c, w in zip(self.names, self.counts, self.sumw):
            eff = c / prev if prev else float("nan")
            cum = c / total if total else float("nan")
            lines.append(f"{n:<{width}}  {c:>10d}  {w:>12.6g}  {eff:>7.2%}  {cum:>7.2%}")
            prev = c
        return "\n".join(lines)


@dataclass(frozen=True)
class SelectionCuts:
    """Thresholds of the selection (defaults: the paper's)."""

    lepton_pt_min: float = 25.0
    lepton_eta_max: float = 2.5
    electron_iso_max: float = 0.12
    muon_iso_max: float = 0.25
    jet_pt_min: float = 25.0
    jet_eta_max: float = 2.5
    min_jets: int = 4
    min_btags: int = 2


#: The selection of the VLD paper.
PAPER_CUTS = SelectionCuts()


def object_ok(pt: Any, eta: Any, pt_min: float, eta_max: float) -> Any:
    """``(pt > pt_min) & (|eta| < eta_max)``, elementwise on awkward or numpy arrays
    (the one definition used by the jagged and the columnar selection)."""
    return (pt > pt_min) & (abs(eta) < eta_max)


def good_leptons(events: Any, cuts: SelectionCuts = PAPER_CUTS) -> tuple[ak.Array, ak.Array]:
    """Jagged boolean masks of selected electrons and muons (pT, |η|, isolation)."""
    e, m = events.Electron, events.Muon
    e_ok = object_ok(e.pt, e.eta, cuts.lepton_pt_min, cuts.lepton_eta_max)
    m_ok = object_ok(m.pt, m.eta, cuts.lepton_pt_min, cuts.lepton_eta_max)
    if "pfRelIso03_all" in ak.fields(e):
        e_ok = e_ok & (e.pfRelIso03_all < cuts.electron_iso_max)
    if "pfRelIso04_all" in ak.fields(m):
        m_ok = m_ok & (m.pfRelIso04_all < cuts.muon_iso_max)
    return e_ok, m_ok


def good_jets(events: Any, cuts: SelectionCuts = PAPER_CUTS) -> ak.Array:
    """Jagged boolean mask of selected jets (pT, |η|)."""
    j = events.Jet
    return object_ok(j.pt, j.eta, cuts.jet_pt_min, cuts.jet_eta_max)


def select(
    events: Any, *, require_truth: bool = False, cuts: SelectionCuts = PAPER_CUTS
) -> tuple[np.ndarray, Cutflow]:
    """Apply the selection.

    Parameters
    ----------
    events
        ``B`` events as returned by :func:`hepvld.io.open_events`.
    require_truth
        Also require a semi-leptonic (e/μ) tt̄ chain in ``GenPart`` (needed to build
        parton-level targets); the categories of rejected events are logged.
    cuts
        Thresholds.

    Returns
    -------
    mask : np.ndarray
        ``(B,)`` bool, events passing every cut.
    cutflow : Cutflow
        Counts after each cut, in order.
    """
    n = len(events)
    w = (
        np.asarray(ak.to_numpy(events.genWeight), dtype=np.float64)
        if "genWeight" in ak.fields(events)
        else np.ones(n)
    )
    e_ok, m_ok = good_leptons(events, cuts)
    n_lep = ak.to_numpy(ak.sum(e_ok, axis=1) + ak.sum(m_ok, axis=1))
    j_ok = good_jets(events, cuts)
    n_jet = ak.to_numpy(ak.sum(j_ok, axis=1))
    n_b = ak.to_numpy(ak.sum(j_ok & events.Jet.btagged, axis=1))
    mask, cf = detector_cutflow(w, n_lep, n_jet, n_b, cuts)
    if require_truth:
        from hepvld.physics.partons import decay_chain

        chain = decay_chain(events)
        mask = truth_cut(mask, chain.valid, chain.category, w, cf)
    return np.asarray(mask, dtype=bool), cf


def detector_cutflow(
    w: np.ndarray,
    n_lep: np.ndarray,
    n_jet: np.ndarray,
    n_b: np.ndarray,
    cuts: SelectionCuts = PAPER_CUTS,
) -> tuple[np.ndarray, Cutflow]:
    """The detector cuts of :func:`select` from per-event counts.

    Parameters
    ----------
    w
        ``(B,)`` float64 weights.
    n_lep, n_jet, n_b
        ``(B,)`` numbers of selected leptons (e + μ), selected jets and selected
        b-tagged jets.

    Returns
    -------
    ``mask (B,)`` bool and the cut-flow (``all events`` and the three cuts).
    """
    cf = Cutflow()
    cf.add("all events", len(w), float(w.sum()))
    mask = n_lep == 1
    cf.add(
        f"exactly 1 isolated e/mu (pT>{cuts.lepton_pt_min:g}, |eta|<{cuts.lepton_eta_max:g})",
        int(mask.sum()),
        float(w[mask].sum()),
    )
    mask = mask & (n_jet >= cuts.min_jets)
    cf.add(
        f">= {cuts.min_jets} jets (pT>{cuts.jet_pt_min:g}, |eta|<{cuts.jet_eta_max:g})",
        int(mask.sum()),
        float(w[mask].sum()),
    )
    mask = mask & (n_b >= cuts.min_btags)
    cf.add(f">= {cuts.min_btags} b-tagged jets", int(mask.sum()), float(w[mask].sum()))
    return mask, cf


def truth_cut(
    mask: np.ndarray, valid: np.ndarray, category: np.ndarray, w: np.ndarray, cf: Cutflow
) -> np.ndarray:
    """Add the truth requirement of :func:`select` to ``mask`` and ``cf`` (in place).

    ``valid``, ``category`` (``(B,)``, :class:`~hepvld.physics.partons.DecayChain`) need
    only be right where ``mask`` is true; the categories of the events it drops are
    logged. Returns the new mask.
    """
    lost = mask & ~valid
    if lost.any():
        from hepvld.physics.partons import DECAY_CATEGORIES

        cats = np.bincount(category[lost])
        detail = ", ".join(f"{DECAY_CATEGORIES[i]}: {c}" for i, c in enumerate(cats) if c)
        log.info("truth requirement drops %d selected events (%s)", int(lost.sum()), detail)
    mask = mask & valid
    cf.add("semi-leptonic (e/mu) ttbar truth", int(mask.sum()), float(w[mask].sum()))
    return mask
