"""The ``parton`` level: the paper's 11 hard-process partons × (M, log E, px, py, pz).

Constant multiplicity ``N = 11`` (order :data:`~hepvld.physics.constants.PARTONS`),
``F = 5`` features (:data:`~hepvld.physics.constants.COMPONENTS`), all-true mask; the flat
55-vector (flat index ``5 * parton + component``) is ``values.reshape(..., 55)``.

Everything level-specific lives here: building the targets from ``GenPart``
(:func:`hepvld.physics.parton_targets`), the per-component standardisation (the JSON state
is :class:`~hepvld.features.TargetPreprocessor`'s, as in every checkpoint so far), draws ->
records with one ``Momentum4D`` field per parton, the ``Draw_<parton>_<pt|eta|phi|mass>``
output branches, the mass-shell consistency term and the 99-column evaluation feature
table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from hepvld.physics.constants import COMPONENTS, DERIVED, PARTONS, TARGET_DIM
from hepvld.physics.kinematics import LOG_E_MAX, mass_shell_residual
from hepvld.targets.base import TargetTensors, register_level

__all__ = [
    "PARAMETERISATIONS",
    "PARTON",
    "DecayPreprocessing",
    "PartonLevel",
    "PartonPreprocessing",
]

#: What the network generates: ``components`` (the paper's 55 numbers, the default) or
#: ``decay`` (the decay chain of :mod:`hepvld.targets.decay_chain`: resonance masses,
#: rest-frame directions and the tt̄ momentum, physics by construction).
PARAMETERISATIONS: tuple[str, ...] = ("components", "decay")

#: Output components of each parton in ``python -m hepvld.unfold`` files.
OUTPUT_COMPONENTS: tuple[str, ...] = ("pt", "eta", "phi", "mass")


class PartonPreprocessing:
    """Per-component standardisation of ``(..., 11, 5)`` targets (the flat 55-vector's).

    Wraps :class:`~hepvld.features.TargetPreprocessor` on the flat vector, so the JSON
    state (:meth:`state_dict`) is exactly the one checkpoints have always stored.
    """

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        from hepvld.features.preprocessing import TargetPreprocessor

        self.flat = (
            TargetPreprocessor()
            if state is None
            else TargetPreprocessor.from_state_dict(dict(state))
        )

    def fit(
        self, values: np.ndarray, mask: np.ndarray, weights: np.ndarray | None = None
    ) -> PartonPreprocessing:
        """Fit on ``values (B, 11, 5)`` (``mask`` is all true), optional ``weights (B,)``."""
        values = np.asarray(values)
        self.flat.fit(values.reshape(len(values), TARGET_DIM), weights)
        return self

    def transform(self, values: Any, mask: Any) -> Any:
        """Physical ``(..., 11, 5)`` -> standardised ``(..., 11, 5)`` (numpy or torch)."""
        flat = self.flat.transform(values.reshape(*values.shape[:-2], TARGET_DIM))
        return flat.reshape(values.shape)

    def inverse_transform(self, values: Any, mask: Any) -> Any:
        """Standardised ``(..., 11, 5)`` -> physical (numpy or torch)."""
        flat = self.flat.inverse_transform(values.reshape(*values.shape[:-2], TARGET_DIM))
        return flat.reshape(values.shape)

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``(shift, scale)``, each ``(11, 5)`` float64: ``x = z * scale + shift``."""
        if self.flat.mean is None or self.flat.scale is None:
            raise RuntimeError("PartonPreprocessing is not fitted")
        shape = (len(PARTONS), len(COMPONENTS))
        return self.flat.mean.reshape(shape), self.flat.scale.reshape(shape)

    def state_dict(self) -> dict[str, Any]:
        """JSON state (:meth:`hepvld.features.TargetPreprocessor.state_dict`)."""
        return self.flat.state_dict()


class DecayPreprocessing:
    """Partons ``(..., 11, 5)`` <-> standardised decay-chain parameters ``(..., 1, P)``.

    ``transform`` maps physical partons to the parameters of
    :func:`~hepvld.targets.decay_chain.to_parameters` and standardises them per parameter;
    ``inverse_transform`` undoes the standardisation and decodes with
    :func:`~hepvld.targets.decay_chain.from_parameters` (numpy or torch). :meth:`affine`
    is the parameter-space map the network holds as buffers. The JSON state is a
    :class:`~hepvld.features.TargetPreprocessor` state of the ``P`` parameters plus
    ``"parameterisation": "decay"``.
    """

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        from hepvld.features.preprocessing import TargetPreprocessor

        if state is not None and state.get("parameterisation") != "decay":
            raise ValueError(
                "the target preprocessing state is not that of the decay parameterisation "
                f"(parameterisation={state.get('parameterisation')!r})"
            )
        flat = {k: v for k, v in (state or {}).items() if k != "parameterisation"}
        self.flat = (
            TargetPreprocessor() if state is None else TargetPreprocessor.from_state_dict(flat)
        )

    def fit(
        self, values: np.ndarray, mask: np.ndarray, weights: np.ndarray | None = None
    ) -> DecayPreprocessing:
        """Fit on partons ``values (B, 11, 5)``, optional ``weights (B,)``.

        Raises ValueError naming the leaf when a training leaf mass is not in
        :data:`~hepvld.targets.decay_chain.LEAF_MASSES` (the decoder would move it).
        """
        from hepvld.targets import decay_chain as dc

        values = np.asarray(values, dtype=np.float64)
        for leaf in dc.LEAVES:
            m = values[:, PARTONS.index(leaf), 0]
            table = np.asarray(dc.LEAF_MASSES[leaf])
            off = np.abs(m[:, None] - table).min(-1) > 1e-3 * np.maximum(table.max(), 1.0)
            if off.any():
                raise ValueError(
                    f"decay parameterisation: {int(off.sum())} training events have a {leaf} "
                    f"mass outside {tuple(table)} GeV (e.g. {m[off][0]:.4g}); use "
                    "parameterisation 'components' for this generator"
                )
        self.flat.fit(dc.to_parameters(values), weights)
        return self

    def transform(self, values: Any, mask: Any) -> Any:
        """Physical partons ``(..., 11, 5)`` (numpy) -> standardised parameters ``(..., 1, P)``."""
        from hepvld.targets.decay_chain import to_parameters

        return self.flat.transform(to_parameters(np.asarray(values)))[..., None, :]

    def inverse_transform(self, values: Any, mask: Any) -> Any:
        """Standardised parameters ``(..., 1, P)`` -> physical partons ``(..., 11, 5)``."""
        from hepvld.targets.decay_chain import from_parameters

        return from_parameters(self.flat.inverse_transform(values[..., 0, :]))

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``(shift, scale)``, each ``(1, P)`` float64, of the parameters."""
        if self.flat.mean is None or self.flat.scale is None:
            raise RuntimeError("DecayPreprocessing is not fitted")
        return self.flat.mean[None], self.flat.scale[None]

    def state_dict(self) -> dict[str, Any]:
        """JSON state: the parameters' standardisation plus ``parameterisation``."""
        return {**self.flat.state_dict(), "parameterisation": "decay"}


@dataclass(frozen=True)
class PartonLevel:
    """The 11-parton, 55-component target level (see the module docstring)."""

    name = "parton"

    #: Parton names, in slot order.
    names: tuple[str, ...] = PARTONS
    #: Components per parton, in feature order.
    components: tuple[str, ...] = COMPONENTS
    #: What the network generates (:data:`PARAMETERISATIONS`); the level's values, draws
    #: and records are the 11 partons × 5 components either way.
    parameterisation: str = "components"
    #: Definition of the tops (:data:`hepvld.physics.partons.TOP_DEFINITIONS`): ``"hard"``
    #: (hard process, tt̄ pT = 0 in hepvld files) or ``"after_isr"`` (last copies).
    tops: str = "hard"

    def __post_init__(self) -> None:
        from hepvld.physics.partons import TOP_DEFINITIONS

        if self.parameterisation not in PARAMETERISATIONS:
            raise ValueError(
                f"parton level: unknown parameterisation {self.parameterisation!r}; "
                f"choose from {PARAMETERISATIONS}"
            )
        if self.tops not in TOP_DEFINITIONS:
            raise ValueError(f"parton level: tops={self.tops!r}; choose from {TOP_DEFINITIONS}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, F) = (11, 5)``."""
        return len(self.names), len(self.components)

    @property
    def model_shape(self) -> tuple[int, int]:
        """Shape of what the network generates: ``(11, 5)``, or ``(1, P)`` for ``decay``."""
        if self.parameterisation == "decay":
            from hepvld.targets.decay_chain import PARAMETERS

            return 1, len(PARAMETERS)
        return self.shape

    def from_parameters(self, values: Any) -> Any:
        """Physical network outputs ``(..., *model_shape)`` -> partons ``(..., 11, 5)``
        (numpy or torch; the identity for ``components``)."""
        if self.parameterisation == "decay":
            from hepvld.targets.decay_chain import from_parameters

            return from_parameters(values[..., 0, :])
        return values

    @property
    def dim(self) -> int:
        """Size of the flat vector, 55."""
        return TARGET_DIM

    @property
    def fixed_multiplicity(self) -> bool:
        return True

    @property
    def derived(self) -> dict[str, tuple[str, ...]]:
        """Composite partons and the leaves they are summed from."""
        return DERIVED

    def options(self) -> dict[str, Any]:
        """Options other than the defaults (``{}`` for the paper's components with the
        hard-process tops, as every checkpoint before these options)."""
        options: dict[str, Any] = {}
        if self.parameterisation != "components":
            options["parameterisation"] = self.parameterisation
        if self.tops != "hard":
            options["tops"] = self.tops
        return options

    # -- names and indices -----------------------------------------------------------
    def index(self, particle: str, component: str) -> int:
        """Flat index of ``component`` of ``particle`` in the 55-vector."""
        from hepvld.physics.constants import target_index

        return target_index(particle, component)

    def labels(self) -> list[str]:
        """``["b_lep/M", "b_lep/logE", ...]``: one label per flat component."""
        return [f"{p}/{c}" for p in self.names for c in self.components]

    def flat(self, values: Any) -> Any:
        """``(..., 11, 5)`` -> ``(..., 55)``."""
        return values.reshape(*values.shape[:-2], TARGET_DIM)

    def unflat(self, x: Any) -> Any:
        """``(..., 55)`` -> ``(..., 11, 5)``."""
        if x.shape[-1] != TARGET_DIM:
            raise ValueError(f"expected last axis {TARGET_DIM}, got {tuple(x.shape)}")
        return x.reshape(*x.shape[:-1], *self.shape)

    # -- building targets ------------------------------------------------------------
    def build(self, events: Any, *, on_invalid: str = "raise") -> TargetTensors:
        """``values (B, 11, 5)`` from ``events.GenPart`` (:func:`hepvld.physics.parton_targets`)."""
        from hepvld.physics import parton_targets

        if len(events) == 0:
            return self.empty()
        x = parton_targets(events, on_invalid=on_invalid, tops=self.tops)  # type: ignore[arg-type]
        return TargetTensors(self.unflat(x), np.ones((len(x), len(self.names)), dtype=bool))

    def from_chain(self, chain: Any, *, on_invalid: str = "raise") -> TargetTensors:
        """:meth:`build` from an already found decay chain
        (:class:`~hepvld.physics.partons.DecayChain`, found with this level's ``tops``;
        the columnar path of :func:`hepvld.data.load_tensors`)."""
        from hepvld.physics.partons import chain_targets

        if len(chain.valid) == 0:
            return self.empty()
        x = chain_targets(chain, on_invalid=on_invalid)  # type: ignore[arg-type]
        return TargetTensors(self.unflat(x), np.ones((len(x), len(self.names)), dtype=bool))

    def empty(self) -> TargetTensors:
        return TargetTensors(
            np.zeros((0, *self.shape), np.float32), np.zeros((0, len(self.names)), bool)
        )

    def preprocessing(
        self, state: Mapping[str, Any] | None = None
    ) -> PartonPreprocessing | DecayPreprocessing:
        if self.parameterisation == "decay":
            return DecayPreprocessing(state)
        return PartonPreprocessing(state)

    # -- draws -> records ------------------------------------------------------------
    def to_records(self, values: np.ndarray, mask: np.ndarray | None = None) -> ak.Array:
        """``values (B, ..., 11, 5)`` -> records with one ``Momentum4D`` field per parton,
        each with the leading shape ``(B, ...)`` (e.g. ``(B, S)`` draws)."""
        from hepvld.physics import targets_to_momenta

        return targets_to_momenta(self.flat(np.asarray(values)))

    def detector_records(self, events: Any) -> ak.Array:
        """χ² pseudo-top partons of the detector objects
        (:func:`hepvld.features.pseudotop.pseudo_top`), one ``Momentum4D`` per parton."""
        from hepvld.features.pseudotop import pseudo_top

        return pseudo_top(events)

    def output_branches(self, records: ak.Array) -> dict[str, ak.Array]:
        """``{f"{parton}_{pt|eta|phi|mass}": (B, S) float32}`` of :meth:`to_records` output."""
        return {
            f"{parton}_{comp}": ak.from_regular(
                ak.values_astype(getattr(records[parton], comp), np.float32), axis=1
            )
            for parton in self.names
            for comp in OUTPUT_COMPONENTS
        }

    # -- physics ---------------------------------------------------------------------
    def consistency(self, values: Any, mask: Any = None, *, scale: float = 1.0) -> Any:
        """``Σ_partons |M² − (E² − |p|²)|`` of physical ``values (..., 11, 5)``, in units of
        ``scale²``, ``log E`` clamped at log(13 TeV); shape ``(...)``."""
        return abs(mass_shell_residual(values, scale=scale, max_log_e=LOG_E_MAX)).sum(-1)

    def feature_table(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The 99-column table (:func:`hepvld.evaluation.aggregates.feature_table`)."""
        from hepvld.evaluation.aggregates import feature_table

        return feature_table(self.flat(np.asarray(values)))


#: The parton level with the default options (the paper's 55 components, hard tops).
PARTON = PartonLevel()


@register_level("parton")
def _parton(**options: Any) -> PartonLevel:
    unknown = sorted(set(options) - {"parameterisation", "tops"})
    if unknown:
        raise ValueError(
            f"the parton level has no options {unknown}; it has ['parameterisation', 'tops']"
        )
    level = PartonLevel(**options)
    return PARTON if level == PARTON else level
