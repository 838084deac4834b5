"""anti-kT clustering with fastjet's array interface, and ΔR matching of jagged objects."""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import fastjet
import numpy as np
from numpy.typing import NDArray

from hepvld.generate import kinematics

__all__ = ["Jets", "any_within", "cluster", "nearest"]

try:  # keep fastjet's C++ banner off stdout (library code never prints)
    from fastjet import _swig

    _swig.ClusterSequence.set_fastjet_banner_stream(None)
except (ImportError, AttributeError):  # pragma: no cover - depends on the fastjet build
    pass


@dataclass(frozen=True, eq=False)
class Jets:
    """Jets of B events, flattened and pT-ordered within each event.

    Attributes
    ----------
    px, py, pz, e : numpy.ndarray of float64, shape (J,)
    counts : numpy.ndarray of int64, shape (B,)
        Jets per event.
    constituent_jet : numpy.ndarray of int64, shape (P,) or None
        For every clustered input particle, the flat index of its jet (only when
        clustering with ``min_pt=0`` and ``constituents=True``; then every input
        belongs to exactly one jet).
    """

    px: NDArray[np.float64]
    py: NDArray[np.float64]
    pz: NDArray[np.float64]
    e: NDArray[np.float64]
    counts: NDArray[np.int64]
    constituent_jet: NDArray[np.int64] | None = None

    @property
    def pt(self) -> NDArray[np.float64]:
        return kinematics.pt(self.px, self.py)

    @property
    def eta(self) -> NDArray[np.float64]:
        return kinematics.eta(self.px, self.py, self.pz)

    @property
    def phi(self) -> NDArray[np.float64]:
        return kinematics.phi(self.px, self.py)

    @property
    def mass(self) -> NDArray[np.float64]:
        return kinematics.mass(self.px, self.py, self.pz, self.e)


def cluster(
    px: NDArray[np.float64],
    py: NDArray[np.float64],
    pz: NDArray[np.float64],
    e: NDArray[np.float64],
    counts: NDArray[np.int64],
    *,
    radius: float = 0.5,
    min_pt: float = 0.0,
    constituents: bool = False,
) -> Jets:
    """Cluster every event of a batch with anti-kT in one fastjet call.

    Parameters
    ----------
    px, py, pz, e : numpy.ndarray of float64, shape (P,)
        Input particles of all events, concatenated.
    counts : numpy.ndarray of int, shape (B,)
        Input particles per event.
    radius : float
        anti-kT distance parameter R.
    min_pt : float
        Keep jets with pT >= ``min_pt`` [GeV].
    constituents : bool
        Also return the jet of every input particle (requires ``min_pt == 0``).
    """
    if constituents and min_pt > 0:
        raise ValueError("constituents=True needs min_pt=0 (every particle in a jet)")
    counts = np.asarray(counts, dtype=np.int64)
    particles = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": e}), counts)
    sequence = fastjet.ClusterSequence(
        particles, fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    )
    jets = sequence.inclusive_jets(min_pt)
    jet_pt = np.hypot(jets["px"], jets["py"])
    order = ak.argsort(jet_pt, axis=1, ascending=False)
    jets = jets[order]
    jet_counts = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    constituent_jet = None
    if constituents:
        index = sequence.constituent_index(min_pt)  # (B, J, C), jets in fastjet's order
        rank = ak.argsort(order, axis=1)  # fastjet order -> pT order
        jet_of = ak.broadcast_arrays(rank, index)[0]
        jet_offsets = np.concatenate([[0], np.cumsum(jet_counts)])[:-1]
        particle_offsets = np.concatenate([[0], np.cumsum(counts)])[:-1]
        flat_index = ak.to_numpy(ak.flatten(index + particle_offsets, axis=None)).astype(np.int64)
        flat_jet = ak.to_numpy(ak.flatten(jet_of + jet_offsets, axis=None)).astype(np.int64)
        constituent_jet = np.full(int(counts.sum()), -1, dtype=np.int64)
        constituent_jet[flat_index] = flat_jet

    def flat(name: str) -> NDArray[np.float64]:
        return ak.to_numpy(ak.flatten(jets[name], axis=1)).astype(np.float64)

    return Jets(flat("px"), flat("py"), flat("pz"), flat("E"), jet_counts, constituent_jet)


def _delta_r_table(eta_a: ak.Array, phi_a: ak.Array, eta_b: ak.Array, phi_b: ak.Array) -> ak.Array:
    """ΔR between every a and every b of the same event, shape (B, var_a, var_b)."""
    pairs = ak.cartesian(
        {"a": ak.zip({"eta": eta_a, "phi": phi_a}), "b": ak.zip({"eta": eta_b, "phi": phi_b})},
        axis=1,
        nested=True,
    )
    return kinematics.delta_r(
        pairs["a", "eta"], pairs["a", "phi"], pairs["b", "eta"], pairs["b", "phi"]
    )


def nearest(
    eta_a: ak.Array, phi_a: ak.Array, eta_b: ak.Array, phi_b: ak.Array, max_dr: float
) -> ak.Array:
    """Index of the nearest b for every a (same event) within ``max_dr``, else -1.

    Parameters
    ----------
    eta_a, phi_a : awkward.Array, shape (B, var)
    eta_b, phi_b : awkward.Array, shape (B, var)
    max_dr : float

    Returns
    -------
    awkward.Array of int32, shape (B, var_a)
    """
    dr = _delta_r_table(eta_a, phi_a, eta_b, phi_b)
    best = ak.argmin(dr, axis=2, keepdims=True)
    best_dr = ak.fill_none(ak.firsts(dr[best], axis=2), np.inf)
    best = ak.fill_none(ak.firsts(best, axis=2), -1)
    return ak.values_astype(ak.where(best_dr < max_dr, best, -1), np.int32)


def any_within(
    eta_a: ak.Array, phi_a: ak.Array, eta_b: ak.Array, phi_b: ak.Array, max_dr: float
) -> ak.Array:
    """For every a: is any b of the same event within ``max_dr``? Shape (B, var_a)."""
    return ak.any(_delta_r_table(eta_a, phi_a, eta_b, phi_b) < max_dr, axis=2)
