"""Hard-process partons of semi-leptonic tt̄ from a GenPart-like collection.

The decay chain is found by identity (``pdgId``) and mother links, never by position, so
that it works on hepvld files (10 hard-process entries), CMS NanoAOD (whole shower
history, several copies of t and W) and Delphes ``Particle`` records:

* a particle's *first copy* is found by following mothers with the same ``pdgId``;
  its *parent* is the first copy of the mother of its first copy;
* candidates are particles flagged ``isHardProcess`` (``statusFlags`` bit 7) that are
  first copies when ``statusFlags`` is present and used, otherwise all first copies;
* W = |pdgId| 24 whose parent is a top; b = |pdgId| 5 whose parent is a top; W daughters =
  candidates whose parent is such a W;
* an event is *semi-leptonic (e/μ)* when it has 2 such W, 2 such b, 4 W daughters of
  which exactly one charged e/μ, one ν_e/ν_μ (same W) and two quarks, and no τ / ν_τ.

Leaves use the hard-process (first-copy) momenta. ``b_lep`` is the b whose parent top
also decays to the leptonic W; ``q1`` is the higher-pT quark of the hadronic W and ``q2``
the other. ``W``, ``t`` and ``tt̄`` are sums of the leaves (:data:`DERIVED`).

Two definitions of the tops (:data:`TOP_DEFINITIONS`, option ``tops``):

* ``"hard"`` (default): the leaves as found, i.e. in hepvld files the hard-process record
  before ISR, where the tt̄ system has pT = 0 (its η carries no information);
* ``"after_isr"``: each top's three leaves are boosted (as Pythia does when the top
  recoils) from the frame of their sum to that of the top's *last copy* before its decay
  (the end of its chain of same-``pdgId`` copies; NanoAOD ``isLastCopy``), so ``t`` is the
  top after ISR recoil and tt̄ has the pT of the radiation it recoils against. Needs
  ``GenPart`` entries for the last copies (hepvld files generated since they are written,
  CMS NanoAOD); a record without them raises :class:`~hepvld.io.TruthError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import awkward as ak
import numpy as np
import vector

from hepvld.io.errors import MissingBranchError, TruthError
from hepvld.physics.constants import COMPONENTS, DECAY_PRODUCTS, DERIVED, PARTONS, TARGET_DIM
from hepvld.physics.kinematics import components_to_p4, p4_components, p4_ptetaphim

__all__ = [
    "DECAY_CATEGORIES",
    "IS_HARD_PROCESS_BIT",
    "TOP_DEFINITIONS",
    "DecayChain",
    "chain_momenta",
    "chain_targets",
    "decay_chain",
    "decay_chain_flat",
    "has_hard_process_flag",
    "momenta_to_targets",
    "parton_momenta",
    "parton_targets",
    "targets_to_momenta",
]

vector.register_awkward()
log = logging.getLogger(__name__)

#: NanoAOD ``GenPart_statusFlags`` bit of ``isHardProcess``.
IS_HARD_PROCESS_BIT: int = 7

#: Values of the ``tops`` option (module docstring).
TOP_DEFINITIONS: tuple[str, ...] = ("hard", "after_isr")
Tops = Literal["hard", "after_isr"]

#: Category codes of :attr:`DecayChain.category` (0 is the only valid one).
DECAY_CATEGORIES: tuple[str, ...] = (
    "semileptonic (e/mu)",
    "incomplete chain (not 2 t->Wb with 4 W daughters)",
    "tau in a W decay",
    "dileptonic",
    "all-hadronic",
    "inconsistent W daughters",
)


@dataclass(frozen=True)
class DecayChain:
    """Per-event result of the decay-chain search.

    Attributes
    ----------
    valid
        ``(B,)`` bool, semi-leptonic (e/μ) tt̄ chain found.
    category
        ``(B,)`` int8 index into :data:`DECAY_CATEGORIES`.
    leaves
        Leaf name (:data:`DECAY_PRODUCTS`) -> ``(B, 4)`` float64 ``(pt, eta, phi, mass)``;
        rows of invalid events are NaN.
    """

    valid: np.ndarray
    category: np.ndarray
    leaves: dict[str, np.ndarray]

    def take(self, rows: np.ndarray) -> DecayChain:
        """The chain of events ``rows`` (indices or boolean mask)."""
        return DecayChain(
            valid=self.valid[rows],
            category=self.category[rows],
            leaves={k: v[rows] for k, v in self.leaves.items()},
        )

    def summary(self) -> dict[str, int]:
        """Number of events per category name."""
        counts = np.bincount(self.category, minlength=len(DECAY_CATEGORIES))
        return {name: int(c) for name, c in zip(DECAY_CATEGORIES, counts) if c}


def _flat(a: Any, dtype: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(a, axis=None)), dtype=dtype)


#: ``kinematics(ix)`` of :func:`decay_chain_flat`: entry indices ``(k,)`` -> ``(k, 4)``
#: float64 ``(pt, eta, phi, mass)`` of those entries.
Kinematics = Callable[[np.ndarray], np.ndarray]


def decay_chain(
    events: Any, *, use_status_flags: bool | None = None, tops: Tops = "hard"
) -> DecayChain:
    """Find the semi-leptonic tt̄ hard-process chain in ``events.GenPart`` (vectorised).

    Parameters
    ----------
    events
        ``B`` events with a ``GenPart`` collection (``pt, eta, phi, mass, pdgId,
        genPartIdxMother``, optional ``statusFlags``).
    use_status_flags
        Restrict candidates to ``isHardProcess`` particles. ``None``: when ``statusFlags``
        is present and some particle has the bit set.
    tops
        ``"hard"`` or ``"after_isr"`` (module docstring): the leaves of each top boosted
        to its last copy.

    Returns
    -------
    DecayChain

    Raises
    ------
    TruthError
        ``tops="after_isr"`` and no valid event has a later copy of its tops in
        ``GenPart`` (a file written before the last copies were stored).

    Notes
    -----
    Flattens ``GenPart`` and calls :func:`decay_chain_flat` (the columnar reader of
    :func:`hepvld.data.load_tensors` calls it on the branches directly).
    """
    if tops not in TOP_DEFINITIONS:
        raise ValueError(f"tops={tops!r}; choose from {TOP_DEFINITIONS}")
    if "GenPart" not in ak.fields(events):
        raise MissingBranchError(
            "events have no GenPart collection: truth is unavailable", ["GenPart"]
        )
    gp = events.GenPart
    counts = np.asarray(ak.to_numpy(ak.num(gp, axis=1)), dtype=np.int64)
    flags = _flat(gp.statusFlags, np.int64) if "statusFlags" in ak.fields(gp) else None
    cols = [_flat(gp[k], np.float64) for k in ("pt", "eta", "phi", "mass")]

    def kinematics(ix: np.ndarray) -> np.ndarray:
        return np.stack([c[ix] for c in cols], axis=-1) if len(ix) else np.zeros((0, 4))

    return decay_chain_flat(
        counts,
        _flat(gp.pdgId, np.int64),
        _flat(gp.genPartIdxMother, np.int64),
        kinematics,
        status_flags=flags,
        use_status_flags=use_status_flags,
        tops=tops,
    )


def has_hard_process_flag(status_flags: np.ndarray) -> bool:
    """Some entry of the flat ``statusFlags`` has the ``isHardProcess`` bit set (what
    ``use_status_flags=None`` decides on)."""
    flags = np.asarray(status_flags, dtype=np.int64)
    return bool(((flags >> IS_HARD_PROCESS_BIT) & 1 == 1).any())


def decay_chain_flat(
    counts: np.ndarray,
    pdg: np.ndarray,
    mother: np.ndarray,
    kinematics: Kinematics,
    *,
    status_flags: np.ndarray | None = None,
    use_status_flags: bool | None = None,
    tops: Tops = "hard",
) -> DecayChain:
    """:func:`decay_chain` on the flat content of a ``GenPart`` collection.

    Parameters
    ----------
    counts
        ``(B,)`` entries per event.
    pdg, mother
        ``(P,)`` ``pdgId`` and ``genPartIdxMother`` (index within the event, < 0: none)
        of the ``P = counts.sum()`` entries, event after event.
    kinematics
        ``kinematics(ix)``: ``(k, 4)`` float64 ``(pt, eta, phi, mass)`` of the entries
        ``ix (k,)``; only called for the entries the chain needs (quark candidates,
        leaves, last top copies), so a caller can gather them from larger arrays.
    status_flags
        ``(P,)`` ``statusFlags``, or ``None`` when the record has none.
    use_status_flags, tops
        As in :func:`decay_chain`.

    Returns
    -------
    DecayChain
    """
    if tops not in TOP_DEFINITIONS:
        raise ValueError(f"tops={tops!r}; choose from {TOP_DEFINITIONS}")
    counts = np.asarray(counts, dtype=np.int64)
    B = len(counts)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    evt = np.repeat(np.arange(B), counts)
    n = int(offsets[-1])
    pdg = np.asarray(pdg, dtype=np.int64)
    apdg = np.abs(pdg)
    mloc = np.asarray(mother, dtype=np.int64)
    ok = (mloc >= 0) & (mloc < counts[evt])
    mom = np.where(ok, mloc + offsets[evt], -1)
    idx = np.arange(n)

    # first copy by pointer jumping along same-pdgId mothers (log2(chain length) steps)
    same = (mom >= 0) & (pdg[np.maximum(mom, 0)] == pdg) if n else np.zeros(0, bool)
    fc = np.where(same, mom, idx)
    while n:
        nxt = fc[fc]
        if np.array_equal(nxt, fc):
            break
        fc = nxt
    mfc = mom[fc] if n else mom
    parent = np.where(mfc >= 0, fc[np.maximum(mfc, 0)], -1) if n else mom

    cand = fc == idx
    if status_flags is not None and n:
        hard = (np.asarray(status_flags, dtype=np.int64) >> IS_HARD_PROCESS_BIT) & 1 == 1
        if use_status_flags is None:
            use_status_flags = bool(hard.any())
        if use_status_flags:
            cand &= hard
    elif use_status_flags:
        raise TruthError("use_status_flags=True but GenPart has no statusFlags")

    papdg = np.where(parent >= 0, apdg[np.maximum(parent, 0)], 0)
    is_w = cand & (apdg == 24) & (papdg == 6)
    is_b = cand & (apdg == 5) & (papdg == 6)
    is_wd = cand & (parent >= 0) & is_w[np.maximum(parent, 0)] if n else cand
    is_lep = is_wd & ((apdg == 11) | (apdg == 13))
    is_nu = is_wd & ((apdg == 12) | (apdg == 14))
    is_tau = is_wd & ((apdg == 15) | (apdg == 16))
    is_q = is_wd & (apdg >= 1) & (apdg <= 5)

    def count(m: np.ndarray) -> np.ndarray:
        return np.bincount(evt[m], minlength=B)

    n_w, n_b, n_wd = count(is_w), count(is_b), count(is_wd)
    n_lep, n_nu, n_tau, n_q = count(is_lep), count(is_nu), count(is_tau), count(is_q)

    def one(m: np.ndarray) -> np.ndarray:
        out = np.full(B, -1, dtype=np.int64)
        sel = np.flatnonzero(m)
        out[evt[sel]] = sel
        return out

    lep, nu = one(is_lep), one(is_nu)
    w_lep = np.where(lep >= 0, parent[np.maximum(lep, 0)] if n else -1, -1)
    w_nu = np.where(nu >= 0, parent[np.maximum(nu, 0)] if n else -1, -1)
    t_lep = np.where(w_lep >= 0, parent[np.maximum(w_lep, 0)] if n else -1, -1)
    b_lep = one(is_b & (parent == t_lep[evt]))
    b_had = one(is_b & (parent != t_lep[evt]))
    # quarks of the hadronic W ordered by pT within each event
    q_sel = np.flatnonzero(is_q & (parent != w_lep[evt]))
    order = q_sel[_by_event_then_pt(evt[q_sel], kinematics(q_sel)[:, 0])]
    first_of_event = np.ones(order.size, dtype=bool)
    first_of_event[1:] = evt[order[1:]] != evt[order[:-1]]
    q1 = np.full(B, -1, dtype=np.int64)
    q2 = np.full(B, -1, dtype=np.int64)
    q2[evt[order[~first_of_event]]] = order[~first_of_event]
    q1[evt[order[first_of_event]]] = order[first_of_event]
    n_q_had = count(is_q & (parent != w_lep[evt]))

    complete = (n_w == 2) & (n_b == 2) & (n_wd == 4)
    semilep = (n_lep == 1) & (n_nu == 1) & (n_q == 2) & (n_tau == 0)
    consistent = (w_lep == w_nu) & (n_q_had == 2) & (b_lep >= 0) & (b_had >= 0)
    valid = complete & semilep & consistent
    category = np.full(B, 5, dtype=np.int8)
    category[valid] = 0
    category[~valid & (n_lep + n_nu == 4)] = 3
    category[~valid & (n_q == 4)] = 4
    category[~valid & (n_tau > 0)] = 2
    category[~complete] = 1

    leaves = {}
    good = np.flatnonzero(valid)  # valid events have all six leaves
    kin = kinematics(
        np.concatenate([b_lep[good], nu[good], lep[good], b_had[good], q1[good], q2[good]])
    )
    for i, name in enumerate(DECAY_PRODUCTS):
        rows = np.full((B, 4), np.nan)
        rows[good] = kin[i * len(good) : (i + 1) * len(good)]
        leaves[name] = rows
    if tops == "after_isr":
        t_had = np.where(b_had >= 0, parent[np.maximum(b_had, 0)] if n else -1, -1)
        last = _last_copies(pdg, mom, fc, n)
        leaves = _boost_to_last_copies(leaves, valid, kinematics, last, t_lep, t_had)
    return DecayChain(valid=valid, category=category, leaves=leaves)


def _by_event_then_pt(event: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """``np.lexsort((-pt, event))`` for non-decreasing ``event``; events of at most two
    entries with finite pT (the hadronic W's quarks) are ordered by one comparison."""
    k = len(event)
    if k < 2 or not np.isfinite(pt).all():
        return np.lexsort((-pt, event))
    pair = event[1:] == event[:-1]  # entry i and i + 1 belong to one event
    if (pair[1:] & pair[:-1]).any() or (event[1:] < event[:-1]).any():
        return np.lexsort((-pt, event))
    order = np.arange(k)
    swap = np.flatnonzero(pair & (pt[:-1] < pt[1:]))  # ties keep their order (stable)
    order[swap], order[swap + 1] = swap + 1, swap
    return order


def _last_copies(pdg: np.ndarray, mom: np.ndarray, fc: np.ndarray, n: int) -> np.ndarray:
    """``(P,)``: for each first copy, the index of the last copy of its chain of
    same-``pdgId`` copies (the particle with no same-``pdgId`` daughter); -1 elsewhere."""
    out = np.full(n, -1, dtype=np.int64)
    if not n:
        return out
    same = (mom >= 0) & (pdg[np.maximum(mom, 0)] == pdg)
    has_copy = np.zeros(n, dtype=bool)
    has_copy[mom[same]] = True
    ends = np.flatnonzero(~has_copy)
    out[fc[ends]] = ends
    return out


def _boost_to_last_copies(
    leaves: dict[str, np.ndarray],
    valid: np.ndarray,
    kinematics: Kinematics,
    last: np.ndarray,
    t_lep: np.ndarray,
    t_had: np.ndarray,
) -> dict[str, np.ndarray]:
    """Leaves of each top boosted from the rest frame of their sum to its last copy."""
    sides = {"lep": (t_lep, ("b_lep", "nu", "lep")), "had": (t_had, ("b_had", "q1", "q2"))}
    later = np.zeros(len(valid), dtype=bool)
    out = dict(leaves)
    for top, names in sides.values():
        first = np.where(valid, top, -1)
        end = np.where(first >= 0, last[np.maximum(first, 0)] if len(last) else -1, -1)
        later |= (end >= 0) & (end != first)
        rows = np.full((len(valid), 4), np.nan)
        ok = end >= 0
        rows[ok] = kinematics(end[ok])
        target = p4_ptetaphim(*rows.T)
        p4 = {name: p4_ptetaphim(*leaves[name].T) for name in names}
        total: Any = p4[names[0]] + p4[names[1]] + p4[names[2]]
        to_rest, to_last = -total.to_beta3(), target.to_beta3()
        for name in names:
            boosted = p4[name].boost_beta3(to_rest).boost_beta3(to_last)
            out[name] = np.stack(
                [boosted.pt, boosted.eta, boosted.phi, boosted.mass], axis=-1
            ).astype(np.float64)
            out[name][~ok] = np.nan
    if valid.any() and not later[valid].any():
        raise TruthError(
            "tops='after_isr' needs the last copies of the tops (before their decay, after "
            "ISR recoil) in GenPart, but no event has a later copy of its tops than the "
            "hard-process one: the file was written before hepvld stored them (regenerate it "
            "with python -m hepvld.generate) or its GenPart is pruned to the hard process; "
            "use tops='hard' for it"
        )
    return out


def _report(chain: DecayChain, on_invalid: str) -> None:
    bad = int((~chain.valid).sum())
    if not bad:
        return
    detail = ", ".join(f"{k}: {v}" for k, v in chain.summary().items() if k != DECAY_CATEGORIES[0])
    msg = (
        f"{bad} of {len(chain.valid)} events have no semi-leptonic (e/mu) tt̄ chain in "
        f"GenPart ({detail})"
    )
    if on_invalid == "raise":
        raise TruthError(
            msg + "; remove them with hepvld.features.select(events, "
            "require_truth=True) or pass on_invalid='nan'"
        )
    log.warning("%s; their targets are NaN", msg)


def parton_momenta(
    events: Any, *, on_invalid: Literal["raise", "nan"] = "raise", tops: Tops = "hard"
) -> dict[str, vector.MomentumNumpy4D]:
    """Four-momenta of the 11 partons (:data:`PARTONS`), each of shape ``(B,)``.

    Composite particles are sums of leaves (:data:`DERIVED`), computed in float64;
    ``tops`` as in :func:`decay_chain`.
    """
    return chain_momenta(decay_chain(events, tops=tops), on_invalid=on_invalid)


def chain_momenta(
    chain: DecayChain, *, on_invalid: Literal["raise", "nan"] = "raise"
) -> dict[str, vector.MomentumNumpy4D]:
    """:func:`parton_momenta` of an already found chain (:func:`decay_chain_flat`)."""
    _report(chain, on_invalid)
    p4 = {name: p4_ptetaphim(*chain.leaves[name].T) for name in DECAY_PRODUCTS}
    for name, parts in DERIVED.items():
        total: Any = p4[parts[0]]
        for part in parts[1:]:
            total = total + p4[part]
        p4[name] = total
    return {name: p4[name] for name in PARTONS}


def parton_targets(
    events: Any, *, on_invalid: Literal["raise", "nan"] = "raise", tops: Tops = "hard"
) -> np.ndarray:
    """The paper's 55-dim parton-level target.

    Parameters
    ----------
    events
        ``B`` events with a ``GenPart`` collection.
    on_invalid
        Events without a semi-leptonic (e/μ) chain: ``"raise"`` a :class:`TruthError`
        naming the count per category, or ``"nan"`` (log a warning, NaN rows).

    Returns
    -------
    np.ndarray
        ``(B, 55)`` float32, ``PARTONS × COMPONENTS`` with flat index
        ``5 * particle + component`` and components ``(M, log E, px, py, pz)``.
    """
    return chain_targets(decay_chain(events, tops=tops), on_invalid=on_invalid)


def chain_targets(
    chain: DecayChain, *, on_invalid: Literal["raise", "nan"] = "raise"
) -> np.ndarray:
    """:func:`parton_targets` of an already found chain: ``(B, 55)`` float32.

    Computed on plain float64 numpy arrays in Cartesian coordinates: each leaf's
    ``(px, py, pz) = pT (cos φ, sin φ, sinh η)``, ``E = sqrt(|p|² + M²)``; composites
    (:data:`DERIVED`) sum the leaves' ``(px, py, pz, E)`` in the order listed there and
    have ``M = sign(m²) sqrt(|m²|)``, ``m² = E² − |p|²`` (negative for space-like sums,
    as ``vector``'s ``mass``); leaves keep their ``M``. The same numbers as summing
    ``vector`` four-momenta (:func:`chain_momenta`) to float32 rounding, except for
    components that cancel to ~0 (tt̄ ``px``/``py`` of the hard process), which differ
    by ~1e-12 GeV (``tests/physics/test_partons.py``); about 5x faster.
    """
    _report(chain, on_invalid)
    B = len(chain.valid)
    out = np.empty((B, len(PARTONS), len(COMPONENTS)), dtype=np.float64)
    p4: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for name in DECAY_PRODUCTS:
        pt, eta, phi, mass = np.asarray(chain.leaves[name], dtype=np.float64).T
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        p4[name] = (px, py, pz, np.sqrt(px * px + py * py + pz * pz + mass * mass))
        out[:, PARTONS.index(name), 0] = mass
    for name, parts in DERIVED.items():
        total = p4[parts[0]]
        for part in parts[1:]:
            q = p4[part]
            total = (total[0] + q[0], total[1] + q[1], total[2] + q[2], total[3] + q[3])
        p4[name] = total
        px, py, pz, e = total
        m2 = e * e - (px * px + py * py + pz * pz)
        out[:, PARTONS.index(name), 0] = np.copysign(np.sqrt(np.abs(m2)), m2)
    for i, name in enumerate(PARTONS):
        px, py, pz, e = p4[name]
        out[:, i, 1] = np.log(e)
        out[:, i, 2], out[:, i, 3], out[:, i, 4] = px, py, pz
    return out.reshape(B, TARGET_DIM).astype(np.float32)


def targets_to_momenta(x: np.ndarray, *, on_shell: bool = True) -> ak.Array:
    """55-vectors -> records with one ``Momentum4D`` field per parton name.

    Parameters
    ----------
    x
        ``(..., 55)`` targets in physical units, e.g. ``(B, 55)`` or ``(B, S, 55)``.
    on_shell
        See :func:`hepvld.physics.kinematics.components_to_p4`: ``True`` keeps ``M`` and
        recomputes ``E``; ``False`` uses ``E = exp(log E)``.

    Returns
    -------
    ak.Array
        Length ``x.shape[0]``; each field has the remaining leading shape (``(B,)`` or
        ``(B, S)`` regular lists) with coordinates ``px, py, pz`` and ``mass`` or ``E``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] != TARGET_DIM or x.ndim < 2:
        raise ValueError(f"expected shape (..., {TARGET_DIM}) with a batch axis, got {x.shape}")
    parts = ak.from_numpy(x.reshape(*x.shape[:-1], len(PARTONS), len(COMPONENTS)))
    fields = {
        name: components_to_p4(parts[..., i, :], on_shell=on_shell)
        for i, name in enumerate(PARTONS)
    }
    return ak.zip(fields, depth_limit=1)


def momenta_to_targets(momenta: ak.Array) -> np.ndarray:
    """Inverse of :func:`targets_to_momenta`: records of ``Momentum4D`` -> ``(..., 55)``."""
    cols = [p4_components(momenta[name]) for name in PARTONS]
    return np.concatenate(cols, axis=-1)
