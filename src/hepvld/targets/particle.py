"""The ``particle`` level (VL-VLD): a variable number of particle-level objects + an event slot.

Layout of one event, ``values (K, H)`` with ``K = 1 + max_objects`` slots and ``H = 9``:

* slot 0 (:data:`EVENT_SLOT`, always real): :data:`EVENT_FEATURES`
  ``(MET, sin φ_MET, cos φ_MET, ν px, ν py, ν pz, ν E, 0, 0)`` — ``GenMET`` and the true
  (hard-process) neutrino, GeV;
* slots ``1..K-1``: the particle-level objects (GenJets and dressed e/μ passing the level's
  object cuts, :mod:`hepvld.features.particle_level`) in decreasing **true** pT, features
  :data:`OBJECT_FEATURES` ``(px, py, pz, log(E+1), log(M+1), is_bjet, is_light_jet,
  is_electron, is_muon)`` (GeV; exactly one type column is 1). Padded slots are 0.

``mask (K,)``: slot 0 True, then True for the first ``n`` objects (``n = mask.sum() - 1``).
Events with more than ``max_objects`` objects keep the leading ones (counted and logged).

Phase space (option ``phase_space``): ``"detector"`` (default) uses the detector
selection's object cuts (pT > 25 GeV, |η| < 2.5); ``"wide"`` the looser
:data:`~hepvld.features.particle_level.WIDE_CUTS`, so that a model trained on every
detector-selected event (fakes included) is cut to the detector phase space after
unfolding. In both, :meth:`ParticleLevel.truth_selection` applies the detector level's
event cuts (one lepton, ≥ 4 jets, ≥ 2 b-jets) to the particle level: its result flags
fakes and misses in :func:`hepvld.data.load_tensors`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from hepvld.features.particle_level import (
    OBJECT_TYPES,
    WIDE_CUTS,
    TruthSelection,
    event_truth,
    truth_objects,
    truth_selection,
)
from hepvld.features.selection import PAPER_CUTS, SelectionCuts
from hepvld.physics.kinematics import LOG_E_MAX, is_torch
from hepvld.targets.base import TargetTensors, register_level
from hepvld.targets.neutrino import NEUTRINO_PARAMETERISATIONS
from hepvld.targets.objects import LEPTON_MASS_PARAMETERISATIONS, OBJECT_PARAMETERISATIONS

__all__ = [
    "CANDIDATES",
    "EVENT_FEATURES",
    "EVENT_SLOT",
    "N_CONTINUOUS",
    "N_EVENT_FEATURES",
    "OBJECT_FEATURES",
    "OBJECT_TYPES",
    "PHASE_SPACES",
    "TYPE_COLUMNS",
    "ParticleLevel",
    "ParticlePreprocessing",
]

log = logging.getLogger(__name__)

#: Features of the event slot (slot 0, columns 0-6; columns 7-8 are 0).
EVENT_FEATURES: tuple[str, ...] = (
    "MET",
    "sin_phi_MET",
    "cos_phi_MET",
    "nu_px",
    "nu_py",
    "nu_pz",
    "nu_E",
)
#: Features of an object slot.
OBJECT_FEATURES: tuple[str, ...] = (
    "px",
    "py",
    "pz",
    "log(E+1)",
    "log(M+1)",
    "is_bjet",
    "is_light_jet",
    "is_electron",
    "is_muon",
)
#: Continuous object columns (standardised); the rest is the one-hot type.
N_CONTINUOUS: int = 5
#: The one-hot type columns of an object slot (order :data:`OBJECT_TYPES`).
TYPE_COLUMNS: slice = slice(N_CONTINUOUS, N_CONTINUOUS + len(OBJECT_TYPES))
#: Number of event-slot features.
N_EVENT_FEATURES: int = len(EVENT_FEATURES)
#: Index of the event slot.
EVENT_SLOT: int = 0
#: Pseudo-top candidates of :meth:`ParticleLevel.candidate_masses`, in its column order.
CANDIDATES: tuple[str, ...] = ("W_had", "W_lep", "t_had", "t_lep")
#: Names of the phase-space options and the object cuts of each.
PHASE_SPACES: dict[str, SelectionCuts] = {"detector": PAPER_CUTS, "wide": WIDE_CUTS}

_H = len(OBJECT_FEATURES)
#: The level's options that choose what the network generates, with their defaults (what a
#: checkpoint without the option was trained with).
_PARAMETERISATION_DEFAULTS: dict[str, str] = {
    "neutrino": "cartesian",
    "objects": "cartesian",
    "lepton_mass": "log",
}
_PARAMETERISATION_OPTIONS: tuple[str, ...] = tuple(_PARAMETERISATION_DEFAULTS)


def _output() -> Any:
    """:mod:`hepvld.targets.particle_output` (draws -> records / branches / features),
    imported lazily."""
    import importlib

    return importlib.import_module("hepvld.targets.particle_output")


def _masked(x: Any, mask: Any) -> Any:
    """``x (..., K, H)`` with slots where ``mask (..., K)`` is False set to 0 (numpy/torch)."""
    if is_torch(x):
        import torch

        m = torch.as_tensor(mask, dtype=torch.bool, device=x.device).unsqueeze(-1)
        return torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return np.where(np.asarray(mask, bool)[..., None], x, 0).astype(x.dtype, copy=False)


def _like(a: np.ndarray, x: Any) -> Any:
    if is_torch(x):
        import torch

        return torch.as_tensor(a, dtype=x.dtype, device=x.device)
    return a.astype(np.result_type(x.dtype, np.float32), copy=False)


class ParticlePreprocessing:
    """Standardisation of ``(..., K, 9)`` particle-level targets (fitted, JSON state).

    Object columns 0-4 are standardised with statistics pooled over every real object
    slot; the event slot's columns 0-6 with their own; type and unused columns keep shift 0,
    scale 1. Scales are floored like every hepvld standardisation
    (:func:`hepvld.features.spread_floor`, ``eps = 1e-2``). Padded slots map to 0 both ways.
    """

    def __init__(
        self,
        n_slots: int,
        state: Mapping[str, Any] | None = None,
        *,
        level: ParticleLevel | None = None,
    ) -> None:
        self.n_slots = int(n_slots)
        #: The level whose ``to_parameters`` / ``from_parameters`` frame the standardisation
        #: (None: the identity, the Cartesian layout).
        self.level = level
        self.eps = 1e-2
        self.event_shift: np.ndarray | None = None
        self.event_scale: np.ndarray | None = None
        self.object_shift: np.ndarray | None = None
        self.object_scale: np.ndarray | None = None
        if state is not None:
            if state.get("type") != type(self).__name__:
                raise ValueError(
                    f"state dict is for {state.get('type')!r}, not ParticlePreprocessing"
                )
            if int(state["n_slots"]) != self.n_slots:
                raise ValueError(
                    f"preprocessing state has {state['n_slots']} slots, the level {self.n_slots} "
                    "(max_objects differs from the checkpoint's)"
                )
            mine = self._parameterisation()
            saved = {k: state[k] for k in _PARAMETERISATION_OPTIONS if k in state}
            if saved != mine:
                raise ValueError(
                    f"preprocessing state is for the parameterisation {saved or 'cartesian'}, "
                    f"the level has {mine or 'cartesian'}"
                )
            self.eps = float(state["eps"])
            self.event_shift = np.asarray(state["event_shift"], np.float64)
            self.event_scale = np.asarray(state["event_scale"], np.float64)
            self.object_shift = np.asarray(state["object_shift"], np.float64)
            self.object_scale = np.asarray(state["object_scale"], np.float64)

    def fit(
        self, values: np.ndarray, mask: np.ndarray, weights: np.ndarray | None = None
    ) -> ParticlePreprocessing:
        """Fit on ``values (B, K, 9)`` (physical), ``mask (B, K)``, optional ``weights (B,)``."""
        from hepvld.features.preprocessing import _masked_stats, spread_floor

        values = np.asarray(values, np.float64)
        mask = np.asarray(mask, bool)
        if values.ndim != 3 or values.shape[1:] != (self.n_slots, _H):
            raise ValueError(f"expected (B, {self.n_slots}, {_H}) targets, got {values.shape}")
        values = self.to_parameters(values, mask)
        w = None if weights is None else np.asarray(weights, np.float64)
        mean, std = _masked_stats(values[:, EVENT_SLOT, :N_EVENT_FEATURES], w)
        self.event_shift, self.event_scale = mean, spread_floor(mean, std, self.eps)
        obj = mask[:, 1:]
        ow = None if w is None else np.broadcast_to(w[:, None], obj.shape)[obj]
        mean, std = _masked_stats(values[:, 1:, :N_CONTINUOUS][obj], ow)
        self.object_shift, self.object_scale = mean, spread_floor(mean, std, self.eps)
        return self

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``(shift, scale)``, each ``(K, 9)`` float64: ``x = z * scale + shift``."""
        if self.event_shift is None or self.object_shift is None:
            raise RuntimeError("ParticlePreprocessing is not fitted")
        assert self.event_scale is not None and self.object_scale is not None
        shift = np.zeros((self.n_slots, _H))
        scale = np.ones((self.n_slots, _H))
        shift[EVENT_SLOT, :N_EVENT_FEATURES] = self.event_shift
        scale[EVENT_SLOT, :N_EVENT_FEATURES] = self.event_scale
        shift[1:, :N_CONTINUOUS] = self.object_shift
        scale[1:, :N_CONTINUOUS] = self.object_scale
        return shift, scale

    def _parameterisation(self) -> dict[str, str]:
        if self.level is None:
            return {}
        options = self.level.options()
        return {k: options[k] for k in _PARAMETERISATION_OPTIONS if k in options}

    def to_parameters(self, values: Any, mask: Any) -> Any:
        """Physical ``(..., K, 9)`` -> what the network generates, in physical units
        (:meth:`ParticleLevel.to_parameters`; the identity without a level)."""
        return values if self.level is None else self.level.to_parameters(values, mask)

    def from_parameters(self, values: Any) -> Any:
        """Inverse of :meth:`to_parameters` (numpy or torch)."""
        return values if self.level is None else self.level.from_parameters(values)

    def transform(self, values: Any, mask: Any) -> Any:
        """Physical ``(..., K, 9)`` -> standardised; padded slots 0 (numpy or torch; numpy
        when the level has a parameterisation other than the Cartesian one)."""
        shift, scale = self.affine()
        values = self.to_parameters(values, mask)
        return _masked((values - _like(shift, values)) / _like(scale, values), mask)

    def inverse_transform(self, values: Any, mask: Any) -> Any:
        """Standardised ``(..., K, 9)`` -> physical; padded slots 0 (numpy or torch)."""
        shift, scale = self.affine()
        values = _masked(values * _like(scale, values) + _like(shift, values), mask)
        return _masked(self.from_parameters(values), mask)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state."""
        if self.event_shift is None or self.object_shift is None:
            raise RuntimeError("ParticlePreprocessing is not fitted")
        assert self.event_scale is not None and self.object_scale is not None
        state: dict[str, Any] = {
            "type": type(self).__name__,
            "version": 1,
            "n_slots": self.n_slots,
            "eps": self.eps,
            "event_shift": self.event_shift.tolist(),
            "event_scale": self.event_scale.tolist(),
            "object_shift": self.object_shift.tolist(),
            "object_scale": self.object_scale.tolist(),
        }
        state.update(self._parameterisation())
        return state


@dataclass(frozen=True)
class ParticleLevel:
    """The variable-length particle level (see the module docstring).

    Parameters
    ----------
    max_objects
        Object slots; ``K = 1 + max_objects``.
    phase_space
        ``"detector"`` or ``"wide"`` (:data:`PHASE_SPACES`).
    neutrino
        What the network generates for the neutrino's ``(pz, E)``: ``"cartesian"`` (the
        values themselves), ``"w_mass"`` (the lepton–neutrino mass and the sign of their
        rapidity difference) or ``"rapidity"`` (their rapidity difference, plus the mass as
        an auxiliary column; :mod:`hepvld.targets.neutrino`). Values, records and output
        are physical ``(px, py, pz, E)`` in both.
    objects
        What the network generates for each object: ``"cartesian"`` (the stored columns)
        or ``"phase_space"`` (``log(pT − pT_min)``, ``artanh(η/η_max)``, ``cos φ``,
        ``sin φ``, ``log(M+1)``: every draw inside the object cuts and on its mass shell,
        :mod:`hepvld.targets.objects`).
    lepton_mass
        What the network generates for a lepton's mass: ``"log"`` (``log(M+1)``, as the
        jets) or ``"dressing"`` (the dressing photons' excess over the rest mass in 10 MeV,
        :func:`~hepvld.targets.objects.to_dressing_mass`: the rest mass exactly unless
        dressed).
    """

    name = "particle"

    max_objects: int = 16
    phase_space: str = "detector"
    neutrino: str = "cartesian"
    objects: str = "cartesian"
    lepton_mass: str = "log"

    def __post_init__(self) -> None:
        if int(self.max_objects) < 1:
            raise ValueError(f"max_objects must be >= 1, got {self.max_objects}")
        if self.phase_space not in PHASE_SPACES:
            raise ValueError(
                f"unknown phase_space {self.phase_space!r}; choose one of {sorted(PHASE_SPACES)}"
            )
        if self.neutrino not in NEUTRINO_PARAMETERISATIONS:
            raise ValueError(
                f"unknown neutrino parameterisation {self.neutrino!r}; choose one of "
                f"{list(NEUTRINO_PARAMETERISATIONS)}"
            )
        if self.objects not in OBJECT_PARAMETERISATIONS:
            raise ValueError(
                f"unknown object parameterisation {self.objects!r}; choose one of "
                f"{list(OBJECT_PARAMETERISATIONS)}"
            )
        if self.lepton_mass not in LEPTON_MASS_PARAMETERISATIONS:
            raise ValueError(
                f"unknown lepton_mass parameterisation {self.lepton_mass!r}; choose one of "
                f"{list(LEPTON_MASS_PARAMETERISATIONS)}"
            )

    # -- sizes -----------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(K, H) = (1 + max_objects, 9)``."""
        return 1 + int(self.max_objects), _H

    @property
    def fixed_multiplicity(self) -> bool:
        return False

    @property
    def n_types(self) -> int:
        """Number of object types, 4 (:data:`OBJECT_TYPES`)."""
        return len(OBJECT_TYPES)

    @property
    def n_continuous(self) -> int:
        """Continuous object features, 5."""
        return N_CONTINUOUS

    @property
    def n_event_features(self) -> int:
        """Event-slot features, 7."""
        return N_EVENT_FEATURES

    @property
    def cuts(self) -> SelectionCuts:
        """Object cuts of this level's phase space."""
        return PHASE_SPACES[self.phase_space]

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_objects": int(self.max_objects),
            "phase_space": self.phase_space,
        }
        for name, default in _PARAMETERISATION_DEFAULTS.items():  # recorded only when set:
            if getattr(self, name) != default:  # old checkpoints compare equal
                options[name] = getattr(self, name)
        return options

    def to_parameters(self, values: Any, mask: Any) -> Any:
        """Physical ``values (..., K, 9)`` (numpy), ``mask (..., K)`` -> what the network
        generates, in physical units: the neutrino (``neutrino="w_mass"``,
        :func:`~hepvld.targets.neutrino.to_w_mass`), then the objects
        (``objects="phase_space"``, :func:`~hepvld.targets.objects.to_phase_space`);
        then the leptons' masses (``lepton_mass="dressing"``,
        :func:`~hepvld.targets.objects.to_dressing_mass`); the identity for the defaults."""
        if all(getattr(self, k) == d for k, d in _PARAMETERISATION_DEFAULTS.items()):
            return values
        if is_torch(values):
            raise TypeError("the particle level's forward parameterisation takes numpy arrays")
        dtype = np.result_type(values, np.float32)
        if self.neutrino != "cartesian":
            from hepvld.targets.neutrino import to_rapidity, to_w_mass

            values = (to_w_mass if self.neutrino == "w_mass" else to_rapidity)(values, mask)
        if self.objects == "phase_space":
            from hepvld.targets.objects import to_phase_space

            values = to_phase_space(values, mask, self.cuts)
        if self.lepton_mass == "dressing":
            from hepvld.targets.objects import to_dressing_mass

            values = to_dressing_mass(values)
        return np.asarray(values).astype(dtype, copy=False)

    def from_parameters(self, values: Any) -> Any:
        """Inverse of :meth:`to_parameters` (numpy or torch, differentiable): the lepton
        masses, the objects (on the physical masses), then the neutrino (on the physical
        lepton). Padded slots are not zeroed: mask them."""
        if self.lepton_mass == "dressing":
            from hepvld.targets.objects import from_dressing_mass

            values = from_dressing_mass(values)
        if self.objects == "phase_space":
            from hepvld.targets.objects import from_phase_space

            values = from_phase_space(values, self.cuts)
        if self.neutrino != "cartesian":
            from hepvld.targets.neutrino import from_rapidity, from_w_mass

            values = (from_w_mass if self.neutrino == "w_mass" else from_rapidity)(values)
        return values

    # -- building targets ------------------------------------------------------------
    def build(self, events: Any, *, on_invalid: str = "raise") -> TargetTensors:
        """``values (B, K, 9)`` float32 and ``mask (B, K)`` of ``B`` events (physical units).

        Events without a semi-leptonic (e/μ) chain have no true neutrino: a
        :class:`~hepvld.io.TruthError` (``on_invalid="raise"``) or a NaN event slot
        (``"nan"``).
        """
        from hepvld.features.detector import pad
        from hepvld.physics.partons import _report, decay_chain

        if on_invalid not in ("raise", "nan"):
            raise ValueError(f"on_invalid={on_invalid!r}; choose 'raise' or 'nan'")
        B = len(events)
        if B == 0:
            return self.empty()
        _report(decay_chain(events), on_invalid)
        K, n = self.shape[0], int(self.max_objects)
        obj = truth_objects(events, self.cuts)
        counts = np.asarray(ak.to_numpy(ak.num(obj, axis=1)), np.int64)
        over = counts > n
        if over.any():
            log.warning(
                "%d of %d events have more than %d particle-level objects; kept the leading %d "
                "in pT (%d objects dropped in total, at most %d in one event; raise max_objects "
                "to keep them)",
                int(over.sum()),
                B,
                n,
                n,
                int((counts - n)[over].sum()),
                int(counts.max() - n),
            )
        kin = {k: pad(obj[k], n, dtype=np.float64) for k in ("pt", "eta", "phi", "mass")}
        types = pad(obj["type"], n, fill=-1, dtype=np.int64)
        real = np.arange(n)[None, :] < counts[:, None]
        pt, eta, phi, m = kin["pt"], kin["eta"], kin["phi"], np.maximum(kin["mass"], 0.0)
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
        values = np.zeros((B, K, _H), np.float64)
        values[:, 1:, :N_CONTINUOUS] = np.stack([px, py, pz, np.log1p(e), np.log1p(m)], axis=-1)
        values[:, 1:, TYPE_COLUMNS] = types[..., None] == np.arange(len(OBJECT_TYPES))
        ev = event_truth(events)
        values[:, EVENT_SLOT, :N_EVENT_FEATURES] = np.column_stack(
            [ev["met"], np.sin(ev["met_phi"]), np.cos(ev["met_phi"]), ev["nu"]]
        )
        mask = np.concatenate([np.ones((B, 1), bool), real], axis=1)
        values[~mask] = 0.0
        return TargetTensors(values.astype(np.float32), mask)

    def truth_selection(self, events: Any) -> TruthSelection:
        """The detector level's event cuts applied at particle level (always with the
        detector phase space's object cuts, whatever ``phase_space``)."""
        return truth_selection(events, cuts=PAPER_CUTS)

    def train_on(self, pass_detector: np.ndarray, pass_truth: np.ndarray) -> np.ndarray:
        """``(B,)`` bool: the events a model of this level trains on — detector-selected,
        and (``phase_space="detector"``) inside the particle-level phase space too."""
        keep = np.asarray(pass_detector, bool)
        if self.phase_space == "detector":
            keep = keep & np.asarray(pass_truth, bool)
        return keep

    def fiducial(
        self, values: np.ndarray, mask: np.ndarray, cuts: SelectionCuts = PAPER_CUTS
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The detector-level phase space applied to physical targets or draws (numpy).

        For a model trained with ``phase_space="wide"``: objects outside the object cuts
        (jets pT > 25 GeV, |η| < 2.5; leptons the same) are removed and the remaining
        ones packed to the front (their order kept), and each event / draw is flagged
        when it passes the event cuts (exactly one lepton, ≥ 4 jets, ≥ 2 b-jets).

        Parameters
        ----------
        values
            ``(..., K, 9)`` physical values (e.g. ``(B, S, K, 9)`` draws).
        mask
            ``(..., K)`` bool.
        cuts
            Thresholds (default: the detector selection's).

        Returns
        -------
        values, mask, passed
            ``(..., K, 9)``, ``(..., K)`` (event slot kept) and ``(...)`` bool.
        """
        values = np.asarray(values)
        mask = np.asarray(mask, bool)
        obj = values[..., 1:, :]
        pt = np.hypot(obj[..., 0], obj[..., 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = np.arcsinh(np.where(pt > 0, obj[..., 2] / pt, 0.0))
        kind = np.argmax(obj[..., TYPE_COLUMNS], axis=-1)
        is_jet = kind <= 1
        keep = mask[..., 1:] & np.where(
            is_jet,
            (pt > cuts.jet_pt_min) & (np.abs(eta) < cuts.jet_eta_max),
            (pt > cuts.lepton_pt_min) & (np.abs(eta) < cuts.lepton_eta_max),
        )
        order = np.argsort(~keep, axis=-1, kind="stable")
        packed = np.take_along_axis(obj, order[..., None], axis=-2)
        kept = np.take_along_axis(keep, order, axis=-1)
        packed = np.where(kept[..., None], packed, 0).astype(values.dtype, copy=False)
        out = np.concatenate([values[..., :1, :], packed], axis=-2)
        out_mask = np.concatenate([mask[..., :1], kept], axis=-1)
        n_lep = (keep & ~is_jet).sum(-1)
        passed = (
            (n_lep == 1)
            & ((keep & is_jet).sum(-1) >= cuts.min_jets)
            & ((keep & (kind == 0)).sum(-1) >= cuts.min_btags)
        )
        return out, out_mask, passed

    def empty(self) -> TargetTensors:
        return TargetTensors(
            np.zeros((0, *self.shape), np.float32), np.zeros((0, self.shape[0]), bool)
        )

    def preprocessing(self, state: Mapping[str, Any] | None = None) -> ParticlePreprocessing:
        return ParticlePreprocessing(self.shape[0], state, level=self)

    # -- records ---------------------------------------------------------------------
    def to_records(self, values: np.ndarray, mask: np.ndarray) -> ak.Array:
        """Physical ``values (B, S, K, 9)``, ``mask (B, S, K)`` -> per event S draws
        (:func:`hepvld.targets.particle_output.to_records`)."""
        return _output().to_records(self, values, mask)

    def output_branches(self, records: ak.Array) -> dict[str, ak.Array]:
        """``Draw_<name>`` branches (:func:`hepvld.targets.particle_output.output_branches`)."""
        return _output().output_branches(self, records)

    def output_collections(self, records: ak.Array) -> dict[str, dict[str, ak.Array]]:
        """Jagged ``Object`` collection of the output file
        (:func:`hepvld.targets.particle_output.output_collections`)."""
        return _output().output_collections(self, records)

    def feature_table(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Evaluation features (:func:`hepvld.targets.particle_output.feature_table`)."""
        return _output().feature_table(self, values, mask)

    def detector_records(self, events: Any) -> ak.Array:
        """Detector-level analogue of the records of ``B`` (selected) events.

        Returns
        -------
        ak.Array
            Length ``B``, fields ``objects``: ``(B, var)`` ``Momentum4D`` (``px, py, pz,
            E`` float64) with ``type`` (int8 index into :data:`OBJECT_TYPES`; b-tagged jets
            are ``bjet``), the selected jets and lepton(s) in decreasing pT; ``event``:
            ``met``, ``met_phi`` (float64) and ``nu`` (``Momentum4D``: MET with the
            neutrino pz from the W-mass constraint,
            :func:`hepvld.features.particle_pseudotop.neutrino_from_met`).
        """
        from hepvld.features.particle_pseudotop import detector_objects, neutrino_from_met

        objects = detector_objects(events)
        met = np.asarray(ak.to_numpy(events.MET.pt), np.float64)
        phi = np.asarray(ak.to_numpy(events.MET.phi), np.float64)
        nu = neutrino_from_met(objects, met, phi)
        return ak.zip(
            {
                "objects": objects,
                "event": ak.zip({"met": met, "met_phi": phi, "nu": nu}, depth_limit=1),
            },
            depth_limit=1,
        )

    # -- type composition and pseudo-top candidates -------------------------------------
    def composition_support(self, max_leptons: int = 2) -> np.ndarray:
        """Type compositions a draw may have, ``(K, K, L, L)`` bool with ``L = max_leptons + 1``,
        indexed ``[n, n_b, n_e, n_mu]`` (``n`` objects of which ``n_b`` b-jets, ``n_e``
        electrons, ``n_mu`` muons; the rest light jets).

        Every composition with ``n_b + n_e + n_mu <= n``; in the ``detector`` phase space
        (the model trains only on events passing it) also the event cuts of
        :meth:`truth_selection`: exactly one lepton, ``>= min_jets`` jets, ``>= min_btags``
        b-jets (so that no drawn composition lies outside what the model was trained on).
        """
        k = self.shape[0]
        n, nb, ne, nm = np.meshgrid(
            np.arange(k),
            np.arange(k),
            np.arange(max_leptons + 1),
            np.arange(max_leptons + 1),
            indexing="ij",
        )
        allowed = nb + ne + nm <= n
        if self.phase_space == "detector":
            cuts = PAPER_CUTS
            allowed &= (ne + nm == 1) & (n - 1 >= cuts.min_jets) & (nb >= cuts.min_btags)
        return allowed

    def candidate_slots(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The pseudo-top assignment of physical targets ``values (B, K, 9)``, ``mask (B, K)``.

        The assignment of :func:`~hepvld.features.particle_pseudotop.pseudo_top_assignment`
        (the K² of the pseudo-top definition applied to *these* objects: for the true
        particle level, the pseudo-top assignment of the true objects — not a match to the
        partons) as slot indices.

        Returns
        -------
        np.ndarray
            ``(B, 5)`` int64 slot indices (``1 .. K-1``) of ``(b_had, b_lep, q1, q2,
            lepton)`` (:data:`~hepvld.features.particle_pseudotop.ASSIGNMENT_ROLES`), ``-1``
            in every column of an event without a pseudo-top.
        """
        from hepvld.features.particle_pseudotop import pseudo_top_assignment

        values = np.asarray(values, np.float64)
        mask = np.asarray(mask, bool)
        if values.ndim != 3 or values.shape[1:] != self.shape or mask.shape != values.shape[:2]:
            raise ValueError(
                f"candidate_slots: values (B, {self.shape[0]}, {_H}) and mask (B, "
                f"{self.shape[0]}) expected, got {values.shape} and {mask.shape}"
            )
        if len(values) == 0:
            return np.zeros((0, 5), np.int64)
        obj, real = values[:, 1:], mask[:, 1:]
        # real object slots come first (the level's layout), so list position = slot - 1
        counts = real.sum(-1)
        mass = np.maximum(np.expm1(np.minimum(obj[..., 4], LOG_E_MAX)), 0.0)
        objects = ak.unflatten(
            ak.zip(
                {
                    "px": obj[..., 0][real],
                    "py": obj[..., 1][real],
                    "pz": obj[..., 2][real],
                    "mass": mass[real],
                    "type": np.argmax(obj[..., TYPE_COLUMNS], axis=-1)[real].astype(np.int8),
                },
                with_name="Momentum4D",
            ),
            counts,
        )
        ev = values[:, EVENT_SLOT]
        nu = ak.zip(
            {"px": ev[:, 3], "py": ev[:, 4], "pz": ev[:, 5], "E": ev[:, 6]},
            with_name="Momentum4D",
        )
        positions = pseudo_top_assignment(objects, ak.zip({"nu": nu}, depth_limit=1))
        return np.where(positions >= 0, positions + 1, -1)

    def candidate_masses(self, values: Any, slots: Any) -> Any:
        """Masses ``(..., 4)`` of :data:`CANDIDATES` ``(W_had, W_lep, t_had, t_lep)`` built from
        the slots ``slots (..., 5)`` (:meth:`candidate_slots`) of physical torch
        ``values (..., K, 9)``, in GeV.

        Objects are on shell with their own mass (``E = sqrt(p² + M²)``, ``M = exp(log(M+1))
        − 1``, the convention of the records and hence of the evaluated pseudo-top), the
        neutrino is the event slot's ``(px, py, pz, E)``; ``M = sqrt(max(M², 1 GeV²))`` (a
        finite gradient). Rows with ``-1`` slots give the masses of slot 0's columns: mask
        them with ``(slots >= 0).all(-1)``. Differentiable.
        """
        import torch

        idx = slots.long().clamp_min(0)
        picked = torch.gather(
            values, -2, idx.unsqueeze(-1).expand(*idx.shape, values.shape[-1])
        )  # (..., 5, H)
        p = picked[..., :3]
        m = picked[..., 4].clamp(max=LOG_E_MAX).expm1().clamp_min(0.0)
        e = (p.square().sum(-1) + m.square()).clamp_min(1e-12).sqrt()
        four = torch.cat([p, e.unsqueeze(-1)], dim=-1)  # (..., 5, 4) px py pz E
        b_had, b_lep, q1, q2, lep = four.unbind(-2)
        nu = values[..., EVENT_SLOT, 3:7]
        w_had, w_lep = q1 + q2, lep + nu
        cands = torch.stack([w_had, w_lep, w_had + b_had, w_lep + b_lep], dim=-2)
        m2 = cands[..., 3].square() - cands[..., :3].square().sum(-1)
        return m2.clamp_min(1.0).sqrt()

    # -- physics ---------------------------------------------------------------------
    def consistency(self, values: Any, mask: Any, *, scale: float = 1.0) -> Any:
        """Mass-shell penalty of physical ``values (..., K, 9)`` (torch or numpy), ``(...)``.

        Per real object slot ``|M² − (E² − |p|²)|`` with ``M = exp(log(M+1)) − 1`` and
        ``E = exp(log(E+1)) − 1`` (log-values clamped at log(13 TeV)); for the event slot
        the massless neutrino's ``|E_ν² − |p_ν|²|``; summed over slots, in units of
        ``scale²`` (GeV² for 1). Padded slots are zeroed first, so garbage there changes
        neither the value nor the gradient;
        0 for consistent truth up to the float32 rounding of the stored features.
        """
        values = _masked(values, mask)
        x = values / scale
        if is_torch(values):
            le, lm = values[..., 3].clamp(max=LOG_E_MAX), values[..., 4].clamp(max=LOG_E_MAX)
            e, mm = le.expm1() / scale, lm.expm1() / scale
        else:
            e = np.expm1(np.minimum(values[..., 3], LOG_E_MAX)) / scale
            mm = np.expm1(np.minimum(values[..., 4], LOG_E_MAX)) / scale
        p2 = x[..., 0] ** 2 + x[..., 1] ** 2 + x[..., 2] ** 2
        obj = abs(mm**2 - (e**2 - p2))[..., 1:].sum(-1)
        nu = x[..., EVENT_SLOT, 3:7]
        return obj + abs(nu[..., 3] ** 2 - (nu[..., 0] ** 2 + nu[..., 1] ** 2 + nu[..., 2] ** 2))


@register_level("particle")
def _particle(**options: Any) -> ParticleLevel:
    known = {"max_objects", "phase_space", *_PARAMETERISATION_OPTIONS}
    unknown = set(options) - known
    if unknown:
        raise ValueError(
            f"unknown particle-level options {sorted(unknown)}; known: {sorted(known)}"
        )
    return ParticleLevel(**options)
