"""Detector-level pseudo-top reconstruction: the 11 partons from jets, lepton and MET.

The detector-level analogue of the unfolded partons (used by
:class:`hepvld.processor.UnfoldingProcessor` to histogram the *same* observables at
detector level). A standard χ² pseudo-top:

* **lepton**: the leading selected e/μ (pT > 25 GeV, |η| < 2.5, isolated);
* **neutrino**: ``(px, py)`` = MET; ``pz`` from the W-mass constraint
  ``(ℓ + ν)² = m_W²`` with a massless lepton and neutrino, the solution of smaller
  ``|pz|``; when the discriminant is negative (MET resolution), its real part;
* **jets**: the ``max_jets`` (default 6) leading selected jets (pT > 25 GeV, |η| < 2.5);
  every assignment ``(b_lep, b_had, q, q')`` of distinct jets with both b candidates
  b-tagged is tried (the two leading b-tagged jets are always candidates) and the one minimising

  .. math:: \\chi^2 = \\Big(\\frac{m_{qq'} - m_W}{\\sigma_W}\\Big)^2
     + \\Big(\\frac{m_{b_h qq'} - m_t}{\\sigma_{t_h}}\\Big)^2
     + \\Big(\\frac{m_{b_\\ell \\ell\\nu} - m_t}{\\sigma_{t_\\ell}}\\Big)^2

  is kept (:data:`CHI2_CONSTANTS`); ``q1`` is the higher-pT light candidate;
* composites ``W_lep = ℓ + ν``, ``W_had = q1 + q2``, ``t_lep = b_lep + W_lep``,
  ``t_had = b_had + W_had``, ``ttbar = t_lep + t_had``.

Events without a lepton, without two b-tagged candidates or with fewer than four jets
get NaN momenta (they fail the hepvld selection anyway).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
import vector

from hepvld.targets.parton import PARTON

__all__ = ["CHI2_CONSTANTS", "Chi2Constants", "neutrino_pz", "pseudo_top"]

vector.register_awkward()


@dataclass(frozen=True)
class Chi2Constants:
    """Masses and resolutions (GeV) of the χ² pseudo-top."""

    m_w: float = 80.4
    m_t: float = 172.5
    sigma_w: float = 10.0
    sigma_t_had: float = 15.0
    sigma_t_lep: float = 20.0


#: Default constants (typical CMS semi-leptonic tt̄ resolutions).
CHI2_CONSTANTS = Chi2Constants()


def neutrino_pz(
    lep_px: np.ndarray,
    lep_py: np.ndarray,
    lep_pz: np.ndarray,
    lep_e: np.ndarray,
    met_px: np.ndarray,
    met_py: np.ndarray,
    m_w: float = CHI2_CONSTANTS.m_w,
) -> np.ndarray:
    """Neutrino ``pz`` from the W-mass constraint (smaller ``|pz|``; real part if complex).

    All arguments are ``(B,)`` arrays; returns ``(B,)`` float64.
    """
    pt2 = lep_px**2 + lep_py**2
    mu = 0.5 * m_w**2 + lep_px * met_px + lep_py * met_py
    with np.errstate(divide="ignore", invalid="ignore"):
        a = mu * lep_pz / pt2
        disc = a**2 - (lep_e**2 * (met_px**2 + met_py**2) - mu**2) / pt2
    root = np.sqrt(np.clip(disc, 0.0, None))
    plus, minus = a + root, a - root
    return np.where(np.abs(plus) < np.abs(minus), plus, minus)


def _combinations(n: int) -> np.ndarray:
    """``(K, 4)`` jet-slot assignments ``(b_lep, b_had, q1, q2)``, distinct, ``q1 < q2``."""
    rows = [
        (bl, bh, q1, q2)
        for bl, bh in itertools.permutations(range(n), 2)
        for q1, q2 in itertools.combinations([i for i in range(n) if i not in (bl, bh)], 2)
    ]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def _mass(*p: tuple[np.ndarray, ...]) -> np.ndarray:
    """Invariant mass of the sum of ``(px, py, pz, E)`` tuples (NaN-safe, ≥ 0)."""
    px, py, pz, e = (sum(c[i] for c in p) for i in range(4))
    return np.sqrt(np.clip(e**2 - px**2 - py**2 - pz**2, 0.0, None))


def _pad(x: Any, n: int) -> np.ndarray:
    return np.asarray(
        ak.to_numpy(ak.fill_none(ak.pad_none(x, n, axis=1, clip=True), np.nan)), dtype=np.float64
    )


def _jagged_cumsum(x: Any) -> ak.Array:
    """Per-event cumulative sum of a jagged ``(B, var)`` integer/boolean array."""
    counts = np.asarray(ak.num(x, axis=1), dtype=np.int64)
    flat = np.asarray(ak.to_numpy(ak.flatten(x)), dtype=np.int64)
    total = np.cumsum(flat)
    starts = np.cumsum(counts) - counts
    before = np.concatenate([[0], total])[starts]
    return ak.unflatten(total - np.repeat(before, counts), counts)


def _p4(px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray) -> ak.Array:
    return ak.zip({"px": px, "py": py, "pz": pz, "E": e}, with_name="Momentum4D")


def pseudo_top(
    events: Any, *, max_jets: int = 6, constants: Chi2Constants = CHI2_CONSTANTS
) -> ak.Array:
    """χ² pseudo-top reconstruction of the 11 partons (see the module docstring).

    Parameters
    ----------
    events
        ``B`` events as returned by :func:`hepvld.io.open_events` (``Jet`` with
        ``btagged``, ``Electron``, ``Muon``, ``MET``).
    max_jets
        Leading selected jets tried (``K`` = assignments grows as ``max_jets**4``/2).
    constants
        Masses and resolutions of the χ².

    Returns
    -------
    ak.Array
        Length ``B``, one ``Momentum4D`` field per parton name
        (``hepvld.targets.PARTON.names``: the layout of :func:`hepvld.unfold`'s records,
        without the draw axis); NaN where the reconstruction is impossible.
    """
    from hepvld.features.selection import good_jets, good_leptons

    c = constants
    e_ok, m_ok = good_leptons(events)
    leptons = ak.concatenate([events.Electron[e_ok], events.Muon[m_ok]], axis=1)
    leptons = leptons[ak.argsort(leptons.pt, axis=1, ascending=False)]
    lep = [_pad(getattr(leptons, f), 1)[:, 0] for f in ("px", "py", "pz", "E")]
    met = events.MET
    met_px = np.asarray(ak.to_numpy(met.pt * np.cos(met.phi)), dtype=np.float64)
    met_py = np.asarray(ak.to_numpy(met.pt * np.sin(met.phi)), dtype=np.float64)
    nu_pz = neutrino_pz(lep[0], lep[1], lep[2], lep[3], met_px, met_py, m_w=c.m_w)
    nu = (met_px, met_py, nu_pz, np.sqrt(met_px**2 + met_py**2 + nu_pz**2))

    jets = events.Jet[good_jets(events)]
    jets = jets[ak.argsort(jets.pt, axis=1, ascending=False)]
    # candidates: the two leading b-tagged jets always, then the others by pT
    lead_b = jets.btagged & (_jagged_cumsum(jets.btagged) <= 2)
    jets = jets[ak.argsort(ak.where(lead_b, 1e9, 0.0) + jets.pt, axis=1, ascending=False)]
    j = [_pad(getattr(jets, f), max_jets) for f in ("px", "py", "pz", "E")]  # (B, J)
    tagged = _pad(ak.values_astype(jets.btagged, np.float64), max_jets) == 1.0
    combos = _combinations(max_jets)  # (K, 4)
    n = len(met_px)
    if n == 0 or len(combos) == 0:
        nan = np.full(n, np.nan)
        return ak.zip({name: _p4(nan, nan, nan, nan) for name in PARTON.names}, depth_limit=1)

    slot = [tuple(comp[:, combos[:, k]] for comp in j) for k in range(4)]  # 4 x (4 x (B, K))
    bl, bh, q1, q2 = slot
    lep_k = tuple(x[:, None] for x in lep)
    nu_k = tuple(x[:, None] for x in nu)
    with np.errstate(invalid="ignore"):
        chi2 = (
            ((_mass(q1, q2) - c.m_w) / c.sigma_w) ** 2
            + ((_mass(bh, q1, q2) - c.m_t) / c.sigma_t_had) ** 2
            + ((_mass(bl, lep_k, nu_k) - c.m_t) / c.sigma_t_lep) ** 2
        )
    valid = tagged[:, combos[:, 0]] & tagged[:, combos[:, 1]] & np.isfinite(chi2)
    chi2 = np.where(valid, chi2, np.inf)
    best = np.argmin(chi2, axis=1)
    ok = valid[np.arange(n), best]

    def pick(k: int) -> tuple[np.ndarray, ...]:
        idx = combos[best, k]
        return tuple(np.where(ok, comp[np.arange(n), idx], np.nan) for comp in j)

    qa, qb = pick(2), pick(3)
    a_harder = qa[0] ** 2 + qa[1] ** 2 >= qb[0] ** 2 + qb[1] ** 2
    q_hi = tuple(np.where(a_harder, x, y) for x, y in zip(qa, qb))
    q_lo = tuple(np.where(a_harder, y, x) for x, y in zip(qa, qb))
    leaves = {
        "b_lep": pick(0),
        "b_had": pick(1),
        "q1": q_hi,
        "q2": q_lo,
        "lep": tuple(np.where(ok, x, np.nan) for x in lep),
        "nu": tuple(np.where(ok, x, np.nan) for x in nu),
    }
    p4 = {name: _p4(*comps) for name, comps in leaves.items()}
    p4["W_lep"] = p4["lep"] + p4["nu"]
    p4["W_had"] = p4["q1"] + p4["q2"]
    p4["t_lep"] = p4["b_lep"] + p4["W_lep"]
    p4["t_had"] = p4["b_had"] + p4["W_had"]
    p4["ttbar"] = p4["t_lep"] + p4["t_had"]
    return ak.zip({name: p4[name] for name in PARTON.names}, depth_limit=1)
