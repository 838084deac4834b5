"""The target-level contract: what is unfolded, as one object.

A *target level* (``parton`` today, a variable-length ``particle`` level next) owns
everything that depends on what is unfolded; models, training, ``hepvld.unfold``, the
writers, the processor, export and evaluation ask it instead of importing constants.

Every level represents one event's targets as a padded set: ``values (N, F)`` (``N`` slots
of ``F`` features) with ``mask (N,)`` (True for real objects) — a fixed level has a
constant multiplicity ``N`` and an all-true mask. Shapes: ``B`` events, ``S`` draws, ``N``
slots, ``F`` features per slot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import awkward as ak
import numpy as np

__all__ = [
    "LEVELS",
    "TargetLevel",
    "TargetPreprocessing",
    "TargetTensors",
    "get_level",
    "level_from_meta",
    "model_shape",
    "register_level",
]


@dataclass(frozen=True)
class TargetTensors:
    """Targets of ``B`` events as a padded set.

    Attributes
    ----------
    values : (B, N, F) float32
        Per-slot features in physical units (padded slots hold 0).
    mask : (B, N) bool
        True for real slots.
    """

    values: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.mask.shape != self.values.shape[:2]:
            raise ValueError(
                f"TargetTensors: values (B, N, F) and mask (B, N) expected, got "
                f"{self.values.shape} and {self.mask.shape}"
            )

    def __len__(self) -> int:
        return len(self.values)

    @property
    def multiplicity(self) -> np.ndarray:
        """``(B,)`` int64 number of real slots per event."""
        return self.mask.sum(axis=-1).astype(np.int64)

    def subset(self, idx: Any) -> TargetTensors:
        """Events ``idx`` (indices, boolean mask or slice), contiguous copies."""
        return replace(
            self,
            values=np.ascontiguousarray(self.values[idx]),
            mask=np.ascontiguousarray(self.mask[idx]),
        )


@runtime_checkable
class TargetPreprocessing(Protocol):
    """Reversible per-feature standardisation of a level's targets (fitted, JSON state).

    The map is affine, ``z = (x - shift) / scale`` with ``shift, scale`` broadcastable to
    ``(N, F)``, so that a network can hold it as two buffers (:meth:`affine`).
    """

    def fit(
        self, values: np.ndarray, mask: np.ndarray, weights: np.ndarray | None = None
    ) -> TargetPreprocessing:
        """Fit on ``values (B, N, F)``, ``mask (B, N)``, optional ``weights (B,)``."""
        ...

    def transform(self, values: Any, mask: Any) -> Any:
        """Physical ``(..., N, F)`` -> standardised; padded slots 0 (numpy or torch)."""
        ...

    def inverse_transform(self, values: Any, mask: Any) -> Any:
        """Standardised ``(..., N, F)`` -> physical; padded slots 0 (numpy or torch)."""
        ...

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``(shift, scale)``, each ``(N, F)`` float64: ``x = z * scale + shift``."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (stored in checkpoints)."""
        ...


@runtime_checkable
class TargetLevel(Protocol):
    """What is unfolded. See ``docs/architecture.md`` ("The target-level seam").

    Attributes
    ----------
    name
        Registry key, recorded in checkpoints (``meta["target_level"]``).
    shape
        ``(N, F)``: padded slots and features per slot.
    fixed_multiplicity
        True when every event has exactly ``N`` slots (all-true mask).
    """

    name: str

    @property
    def shape(self) -> tuple[int, int]: ...

    @property
    def fixed_multiplicity(self) -> bool: ...

    def options(self) -> dict[str, Any]:
        """JSON-serialisable options of this level (recorded in checkpoints)."""
        ...

    # -- building targets ------------------------------------------------------------
    def build(self, events: Any, *, on_invalid: str = "raise") -> TargetTensors:
        """Targets of ``B`` selected events (physical units). ``on_invalid="nan"``: events
        without a valid truth get NaN rows instead of an error."""
        ...

    def empty(self) -> TargetTensors:
        """A correctly shaped bundle of 0 events."""
        ...

    # -- preprocessing ---------------------------------------------------------------
    def preprocessing(self, state: Mapping[str, Any] | None = None) -> TargetPreprocessing:
        """An unfitted preprocessing, or the one of a stored ``state`` (its ``state_dict``)."""
        ...

    # -- draws -> records ------------------------------------------------------------
    def to_records(self, values: np.ndarray, mask: np.ndarray) -> ak.Array:
        """Physical ``values (B, ..., N, F)`` with ``mask (B, ..., N)`` -> awkward records of
        ``vector`` ``Momentum4D`` (length ``B``): named fields or jagged lists."""
        ...

    def detector_records(self, events: Any) -> ak.Array:
        """The detector-level analogue of :meth:`to_records` for ``B`` selected events
        (length ``B``, same fields), so observables are filled at detector level too."""
        ...

    def output_branches(self, records: ak.Array) -> dict[str, ak.Array]:
        """Flat ``{name: (B, S) values}`` written by ``python -m hepvld.unfold`` (``Draw_<name>``)."""
        ...

    # -- physics ---------------------------------------------------------------------
    def consistency(self, values: Any, mask: Any, *, scale: float) -> Any:
        """Physics-consistency penalty ``(...)`` of physical torch ``values (..., N, F)``
        (a differentiable loss term; 0 for consistent draws)."""
        ...

    def feature_table(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``(..., K)`` float64 features read by evaluation (distances, calibration)."""
        ...


#: Registered target levels: name -> factory ``factory(**options) -> TargetLevel``.
LEVELS: dict[str, Callable[..., TargetLevel]] = {}


def register_level(name: str) -> Callable[[Callable[..., TargetLevel]], Callable[..., TargetLevel]]:
    """Decorator registering a target-level factory under ``name``."""

    def wrap(factory: Callable[..., TargetLevel]) -> Callable[..., TargetLevel]:
        if name in LEVELS:
            raise ValueError(f"target level {name!r} is registered twice")
        LEVELS[name] = factory
        return factory

    return wrap


def get_level(level: str | TargetLevel, options: Mapping[str, Any] | None = None) -> TargetLevel:
    """The level named ``level`` with ``options`` (a level object is returned as it is)."""
    if not isinstance(level, str):
        if options:
            raise ValueError("options are only accepted with a level name")
        return level
    try:
        factory = LEVELS[level]
    except KeyError:
        raise ValueError(f"unknown target level {level!r}; registered: {sorted(LEVELS)}") from None
    return factory(**dict(options or {}))


def level_from_meta(meta: Mapping[str, Any]) -> TargetLevel:
    """The level a checkpoint's metadata records (``target_level``, ``target_options``).

    Checkpoints written before levels existed have no such field: they are ``parton``.
    """
    return get_level(str(meta.get("target_level", "parton")), meta.get("target_options") or {})


def model_shape(level: TargetLevel) -> tuple[int, int]:
    """Shape ``(K', H')`` of what a network generates for ``level``: its ``model_shape``
    when it has a parameterisation of its own (the parton level's ``decay``), else its
    ``shape``. Networks map it back with the level's ``from_parameters`` (if any)."""
    shape = getattr(level, "model_shape", level.shape)
    return int(shape[0]), int(shape[1])
