"""Observables of the 11 partons, histogrammed by :class:`hepvld.processor.UnfoldingProcessor`.

An :class:`Observable` is a name, a callable ``partons -> values`` and a binning. The
callable receives an awkward record array with one ``Momentum4D`` field per parton
(``b_lep nu lep b_had q1 q2 W_lep W_had t_lep t_had ttbar``) and returns one number per
parton entry, whatever the leading shape: ``(B,)`` for detector/truth level, ``(B, S)``
for the unfolded posterior draws. Anything written with ``vector`` / awkward operations
(``p.t_had.pt``, ``(p.t_had + p.b_lep).mass``, ``abs(p.t_lep.rapidity - p.t_had.rapidity)``)
works on both.

Built-ins are named ``{parton}_{quantity}`` with quantity ``pt``, ``eta``, ``phi``,
``mass`` (e.g. ``t_had_pt``, ``ttbar_mass``); :func:`builtin` makes one, and
:data:`DEFAULT_OBSERVABLES` lists pT, η, φ, mass of t_had, t_lep, tt̄, W_had, W_lep, ν.

Callables must be picklable for process-based executors (module-level functions or
instances such as :class:`PartonQuantity`; dask also accepts lambdas via cloudpickle).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import awkward as ak
import numpy as np

from hepvld.targets.parton import PARTON

__all__ = [
    "DEFAULT_OBSERVABLES",
    "PARTON_LABELS",
    "QUANTITIES",
    "Binning",
    "Observable",
    "PartonQuantity",
    "builtin",
    "evaluate",
    "resolve_observables",
]

#: Binning: ``(n, low, high)`` regular bins, or a sequence of ≥ 2 increasing edges.
Binning: TypeAlias = tuple[int, float, float] | Sequence[float]

#: Built-in quantities: LaTeX symbol and unit ("" for none).
QUANTITIES: dict[str, tuple[str, str]] = {
    "pt": ("p_{T}", "GeV"),
    "eta": ("\\eta", ""),
    "phi": ("\\phi", ""),
    "mass": ("m", "GeV"),
}

#: LaTeX labels of the partons.
PARTON_LABELS: dict[str, str] = {
    "b_lep": "b_{\\ell}",
    "nu": "\\nu",
    "lep": "\\ell",
    "b_had": "b_{h}",
    "q1": "q_{1}",
    "q2": "q_{2}",
    "W_lep": "W_{\\ell}",
    "W_had": "W_{h}",
    "t_lep": "t_{\\ell}",
    "t_had": "t_{h}",
    "ttbar": "t\\bar{t}",
}

_TOPS, _WS = ("t_had", "t_lep"), ("W_had", "W_lep")

#: Default observables: pT, η, φ, mass of these partons.
DEFAULT_OBSERVABLES: tuple[str, ...] = tuple(
    f"{p}_{q}" for p in ("t_had", "t_lep", "ttbar", "W_had", "W_lep", "nu") for q in QUANTITIES
)


def _default_bins(parton: str, quantity: str) -> tuple[int, float, float]:
    if quantity == "eta":
        return (30, -5.0, 5.0) if parton == "ttbar" else (30, -3.0, 3.0)
    if quantity == "phi":
        return (20, -math.pi, math.pi)
    if quantity == "pt":
        high = {"ttbar": 300.0, **dict.fromkeys(_TOPS, 500.0), **dict.fromkeys(_WS, 400.0)}
        return (25, 0.0, high.get(parton, 300.0))
    if parton in _TOPS:
        return (30, 100.0, 250.0)
    if parton in _WS:
        return (30, 40.0, 120.0)
    if parton == "ttbar":
        return (30, 300.0, 1200.0)
    return (20, 0.0, 20.0)


@dataclass(frozen=True)
class PartonQuantity:
    """Picklable callable ``partons -> partons[parton].quantity``."""

    parton: str
    quantity: str

    def __call__(self, partons: ak.Array) -> ak.Array:
        return getattr(partons[self.parton], self.quantity)


@dataclass(frozen=True)
class Observable:
    """A named function of the partons with its histogram binning.

    Parameters
    ----------
    name
        Histogram key and axis name (a Python identifier, not ``draw``).
    func
        ``partons -> values`` with the leading shape of ``partons`` (see module docstring).
    bins
        ``(n, low, high)`` or explicit edges.
    label
        Axis label (LaTeX allowed); defaults to ``name``.
    """

    name: str
    func: Callable[[ak.Array], Any]
    bins: Binning
    label: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name == "draw":
            raise ValueError(
                f"observable name must be an identifier other than 'draw', got {self.name!r}"
            )
        if not callable(self.func):
            raise TypeError(f"func of observable {self.name!r} is not callable")
        edges = self.edges
        if len(edges) < 2 or not np.all(np.diff(edges) > 0):
            raise ValueError(
                f"bins of {self.name!r} must give >= 2 increasing edges, got {self.bins!r}"
            )

    @property
    def edges(self) -> np.ndarray:
        """Bin edges ``(n + 1,)``."""
        b = tuple(self.bins)
        if len(b) == 3 and isinstance(b[0], (int, np.integer)) and not isinstance(b[0], bool):
            return np.linspace(float(b[1]), float(b[2]), int(b[0]) + 1)
        return np.asarray(b, dtype=np.float64)

    def axis(self) -> Any:
        """A ``hist`` axis (regular or variable, with under/overflow) for this observable."""
        import hist

        b = tuple(self.bins)
        label = self.label or self.name
        if len(b) == 3 and isinstance(b[0], (int, np.integer)) and not isinstance(b[0], bool):
            return hist.axis.Regular(
                int(b[0]), float(b[1]), float(b[2]), name=self.name, label=label
            )
        return hist.axis.Variable(self.edges, name=self.name, label=label)

    def with_bins(self, bins: Binning) -> Observable:
        """A copy with other binning."""
        return Observable(self.name, self.func, bins, self.label)

    def __call__(self, partons: ak.Array) -> Any:
        return self.func(partons)


def builtin(name: str) -> Observable:
    """The built-in observable ``{parton}_{quantity}`` (e.g. ``t_had_pt``, ``nu_eta``), or
    a particle-level one (``n_jets``, ``jet1_pt``, ``met``, ...: :mod:`hepvld.particle_observables`)."""
    from hepvld.particle_observables import PARTICLE_BUILTINS

    if name in PARTICLE_BUILTINS:
        return PARTICLE_BUILTINS[name]
    parton, _, quantity = name.rpartition("_")
    if parton not in PARTON.names or quantity not in QUANTITIES:
        raise ValueError(
            f"unknown observable {name!r}: expected '{{parton}}_{{quantity}}' with parton in "
            f"{list(PARTON.names)} and quantity in {list(QUANTITIES)}"
        )
    symbol, unit = QUANTITIES[quantity]
    label = f"${symbol}({PARTON_LABELS[parton]})$" + (f" [{unit}]" if unit else "")
    return Observable(
        name, PartonQuantity(parton, quantity), _default_bins(parton, quantity), label
    )


def resolve_observables(
    observables: Sequence[str | Observable], binning: Mapping[str, Binning] | None = None
) -> tuple[Observable, ...]:
    """Built-in names and :class:`Observable` objects -> observables, with ``binning`` overrides.

    Raises
    ------
    ValueError
        Unknown built-in name, duplicate names, or a ``binning`` key naming no observable.
    """
    out = [builtin(o) if isinstance(o, str) else o for o in observables]
    for o in out:
        if not isinstance(o, Observable):
            raise TypeError(f"expected an observable name or Observable, got {type(o).__name__}")
    names = [o.name for o in out]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate observable names in {names}")
    binning = dict(binning or {})
    unknown = set(binning) - set(names)
    if unknown:
        raise ValueError(f"binning given for unknown observables {sorted(unknown)}")
    return tuple(o.with_bins(binning[o.name]) if o.name in binning else o for o in out)


def evaluate(observable: Observable, partons: ak.Array) -> np.ndarray:
    """Values of ``observable`` as a float64 numpy array with the leading shape of ``partons``."""
    values = observable(partons)
    if isinstance(values, ak.Array):
        values = ak.to_numpy(values, allow_missing=False)
    values = np.asarray(values, dtype=np.float64)
    if values.shape[:1] != (len(partons),):
        raise ValueError(
            f"observable {observable.name!r} returned shape {values.shape} for {len(partons)} events"
        )
    return values
