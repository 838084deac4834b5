"""A versioned HDF5 file for unbinned unfolded results, and its reader.

What a measurement publishes instead of histograms: per selected event the posterior
draws of the target level, the bootstrap replicas of the data, systematic variations and
the metadata that says where the result comes from. Any observable is re-derived from the
draws afterwards (:meth:`UnbinnedResult.records`, :meth:`UnbinnedResult.histogram`).

Layout (format ``hepvld-unbinned``, version :data:`FORMAT_VERSION`; ``B`` events, ``S``
draws per event, ``K, H`` the level's target shape, ``R`` bootstrap replicas)::

    /                  attrs: format="hepvld-unbinned", version=1, meta=<JSON string>
    /event             (B,)        uint64   input event number
    /weight            (B,)        float64  nominal event weight (data: 1)
    /draws/values      (B, S, K, H) float32 posterior draws, physical units
    /draws/mask        (B, S, K)   bool     real slots of each draw (all True at parton level)
    /bootstrap         (B, R)      uint16   Poisson(1) replica weights, keyed by event number
    /systematics/<n>   (B,)        float64  event-weight variation n (multiplies /weight)
    /truth/values      (B, K, H)   float32  optional: the true target (simulation only;
    /truth/mask        (B, K)      bool     NaN rows where the truth chain is missing)

``meta`` holds ``model``, ``checkpoint``, ``checkpoint_sha256`` (of the weights used),
``checkpoint_step``, ``training_files`` (the training prior), ``target_level``,
``target_options``, ``selection`` (the cut names), ``cutflow`` (:meth:`Cutflow.to_dict`),
``sampler``, ``n_samples``, ``seed``, ``bootstrap_seed``, ``hepvld_version`` and any
user keys. A reader refuses files of another format or a newer version with a message
naming the file.

The bootstrap weights of an event depend only on ``(bootstrap_seed, event number)``
(:func:`poisson_replicas`): the same event in two results gets the same weights, so
statistical correlations between results (e.g. two observables, or a nominal and a
varied unfolding of the same data) are kept, as in OmniFold.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hepvld.targets import TargetLevel, get_level

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ClosureResult",
    "HistogramResult",
    "UnbinnedFormatError",
    "UnbinnedResult",
    "checkpoint_sha256",
    "closure",
    "poisson_replicas",
    "read_unbinned",
    "unfold_to_unbinned",
    "write_unbinned",
]

log = logging.getLogger(__name__)

#: The ``format`` attribute of every file.
FORMAT_NAME = "hepvld-unbinned"
#: Current layout version; readers accept this and older versions.
FORMAT_VERSION = 1


class UnbinnedFormatError(ValueError):
    """A file is not a (readable) hepvld unbinned result; the message names the file."""


# -- bootstrap ------------------------------------------------------------------------
_POISSON1_CDF = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(20)])


def poisson_replicas(events: np.ndarray, n_replicas: int, seed: int = 0) -> np.ndarray:
    """Poisson(1) bootstrap weights keyed by ``(seed, event number, replica)``.

    Parameters
    ----------
    events : (B,) integer
        Event numbers (unique within a sample).
    n_replicas
        ``R`` replicas.
    seed
        Bootstrap seed (independent of the draw seed).

    Returns
    -------
    (B, R) uint16
        Row ``i`` depends only on ``seed`` and ``events[i]``, whatever the chunking.
    """
    from hepvld.data import splitmix64

    if n_replicas < 0:
        raise ValueError(f"n_replicas must be >= 0, got {n_replicas}")
    ev = np.asarray(events, dtype=np.uint64)
    out = np.empty((len(ev), n_replicas), dtype=np.uint16)
    with np.errstate(over="ignore"):
        base = splitmix64(ev ^ splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], np.uint64)))
        for r in range(n_replicas):
            key = splitmix64(base + np.uint64(r + 1) * np.uint64(0x9E3779B97F4A7C15))
            u = (key >> np.uint64(11)).astype(np.float64) / float(1 << 53)
            out[:, r] = np.searchsorted(_POISSON1_CDF, u, side="right")
    return out


# -- histograms with separated uncertainties ----------------------------------------
@dataclass
class HistogramResult:
    """A histogram of an unfolded observable with its uncertainties separated.

    Attributes
    ----------
    edges : (n+1,)
    nominal : (n,)
        ``Σ_i w_i (1/S) Σ_s 1[x_is in bin]``: each event spreads its weight over its draws.
    stat : (n,)
        Statistical uncertainty of the data: standard deviation over the bootstrap
        replicas (all draws of one event share its Poisson weight). NaN without replicas.
    stat_cov : (n, n)
        Covariance over the replicas (bin-to-bin correlations included).
    draws : (n,)
        Posterior-draw (sampling) uncertainty of ``nominal``: spread of the single-draw
        histograms ``h_s`` over ``s``, divided by ``sqrt(S)`` (NaN for ``S == 1``).
    draw_spread : (n,)
        The spread of the single-draw histograms itself (what one draw per event shows).
    replicas : (R, n)
        The replica histograms.
    """

    edges: np.ndarray
    nominal: np.ndarray
    stat: np.ndarray
    stat_cov: np.ndarray
    draws: np.ndarray
    draw_spread: np.ndarray
    replicas: np.ndarray

    @property
    def total(self) -> np.ndarray:
        """``sqrt(stat² + draws²)`` (NaN parts count as 0)."""
        return np.sqrt(np.nan_to_num(self.stat) ** 2 + np.nan_to_num(self.draws) ** 2)

    @property
    def stat_corr(self) -> np.ndarray:
        """Correlation matrix of the statistical uncertainty."""
        d = np.sqrt(np.diag(self.stat_cov))
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.stat_cov / np.outer(d, d)


def _hist_per_draw(x: np.ndarray, w: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``(S, n)`` histograms of ``x (B, S)`` with event weights ``w (B,)``."""
    nb = len(edges) - 1
    idx = np.searchsorted(edges, x, side="right") - 1
    ok = (idx >= 0) & (idx < nb) & np.isfinite(x)
    s = np.broadcast_to(np.arange(x.shape[1]), x.shape)
    flat = np.where(ok, s * nb + idx, 0)
    wt = np.where(ok, np.broadcast_to(w[:, None], x.shape), 0.0)
    return np.bincount(flat.ravel(), wt.ravel(), minlength=x.shape[1] * nb).reshape(-1, nb)


def histogram(
    x: np.ndarray,
    edges: Sequence[float] | np.ndarray,
    *,
    weights: np.ndarray | None = None,
    bootstrap: np.ndarray | None = None,
) -> HistogramResult:
    """Histogram of per-draw values ``x (B, S)`` with stat and posterior-draw errors.

    ``weights (B,)`` event weights; ``bootstrap (B, R)`` replica weights (multiplying
    ``weights``). Values outside ``edges`` or non-finite are not counted.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    e = np.asarray(edges, dtype=np.float64)
    b, s = x.shape
    w = np.ones(b) if weights is None else np.asarray(weights, dtype=np.float64)
    per_draw = _hist_per_draw(x, w, e)  # (S, n)
    nominal = per_draw.mean(0)
    spread = per_draw.std(0, ddof=1) if s > 1 else np.full(len(e) - 1, np.nan)
    draws = spread / math.sqrt(s)
    nb = len(e) - 1
    if bootstrap is not None and bootstrap.shape[1] > 0:
        idx = np.searchsorted(e, x, side="right") - 1
        ok = (idx >= 0) & (idx < nb) & np.isfinite(x)
        frac = np.zeros((b, nb))  # each event's fraction of draws per bin
        rows = np.broadcast_to(np.arange(b)[:, None], x.shape)
        np.add.at(frac, (rows[ok], idx[ok]), 1.0 / s)
        reps = (np.asarray(bootstrap, np.float64) * w[:, None]).T @ frac  # (R, n)
        cov = (
            np.atleast_2d(np.cov(reps, rowvar=False))
            if len(reps) > 1
            else np.full((nb, nb), np.nan)
        )
        stat = np.sqrt(np.diag(cov))
    else:
        reps = np.zeros((0, nb))
        cov = np.full((nb, nb), np.nan)
        stat = np.full(nb, np.nan)
    return HistogramResult(e, nominal, stat, cov, draws, spread, reps)


@dataclass
class ClosureResult:
    """Unfolded vs true histogram: pulls and χ² with the unfolded result's covariance.

    ``chi2`` uses the bootstrap covariance plus the draw error on the diagonal (and the
    truth histogram's own Poisson error when ``truth_independent``); ``pulls (n,)`` use
    the diagonal.
    """

    unfolded: HistogramResult
    truth: np.ndarray
    pulls: np.ndarray
    chi2: float
    ndf: int
    p_value: float

    @property
    def passed(self) -> bool:
        """``p_value > 0.01``."""
        return self.p_value > 0.01


def closure(
    unfolded: HistogramResult,
    truth_values: np.ndarray,
    *,
    truth_weights: np.ndarray | None = None,
    truth_independent: bool = False,
) -> ClosureResult:
    """Compare an unfolded histogram with the histogram of the true values ``(B,)``.

    With the *same* events (``truth_independent=False``, a closure test on simulation)
    the truth histogram is not a second random sample: only the unfolding's uncertainty
    enters. Bins empty in both are skipped.
    """
    from scipy import stats

    t = np.asarray(truth_values, np.float64).reshape(len(truth_values), -1)
    tw = np.ones(len(t)) if truth_weights is None else np.asarray(truth_weights, np.float64)
    truth = _hist_per_draw(t, tw, unfolded.edges).mean(0)
    cov = np.nan_to_num(unfolded.stat_cov) + np.diag(np.nan_to_num(unfolded.draws) ** 2)
    if truth_independent:
        cov = cov + np.diag(_hist_per_draw(t, tw**2, unfolded.edges).mean(0))
    keep = (unfolded.nominal > 0) | (truth > 0)
    diff = (unfolded.nominal - truth)[keep]
    c = cov[np.ix_(keep, keep)]
    with np.errstate(invalid="ignore", divide="ignore"):
        pulls = (unfolded.nominal - truth) / np.sqrt(np.diag(cov))
    chi2 = float(diff @ np.linalg.pinv(c) @ diff) if keep.any() else 0.0
    ndf = int(keep.sum())
    p = float(stats.chi2.sf(chi2, ndf)) if ndf else 1.0
    return ClosureResult(unfolded, truth, pulls, chi2, ndf, p)


# -- the result object ----------------------------------------------------------------
@dataclass
class UnbinnedResult:
    """Per-event unfolded draws with replicas, variations, optional truth and metadata.

    Attributes
    ----------
    event : (B,) uint64
    values : (B, S, K, H) float32
        Posterior draws in physical units.
    mask : (B, S, K) bool
    weight : (B,) float64
    bootstrap : (B, R) uint16
    systematics : {name: (B,) float64}
        Event-weight variations (multiply ``weight``).
    truth_values : (B, K, H) float32 or None
    truth_mask : (B, K) bool or None
    meta : dict
        JSON metadata (see the module docstring).
    """

    event: np.ndarray
    values: np.ndarray
    mask: np.ndarray
    weight: np.ndarray
    bootstrap: np.ndarray
    systematics: dict[str, np.ndarray] = field(default_factory=dict)
    truth_values: np.ndarray | None = None
    truth_mask: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        b = len(self.event)
        checks = {
            "values": (self.values.ndim == 4 and len(self.values) == b),
            "mask": self.mask.shape == self.values.shape[:3],
            "weight": self.weight.shape == (b,),
            "bootstrap": self.bootstrap.ndim == 2 and len(self.bootstrap) == b,
        }
        checks.update({f"systematics/{k}": v.shape == (b,) for k, v in self.systematics.items()})
        if self.truth_values is not None:
            checks["truth"] = self.truth_values.shape == (b, *self.values.shape[2:])
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"UnbinnedResult: inconsistent shapes for {bad} (B={b}, values "
                f"{self.values.shape}, mask {self.mask.shape}, bootstrap {self.bootstrap.shape})"
            )

    def __len__(self) -> int:
        return len(self.event)

    @property
    def n_samples(self) -> int:
        return int(self.values.shape[1])

    @property
    def level(self) -> TargetLevel:
        """The target level named in the metadata (``parton`` when absent)."""
        return get_level(
            str(self.meta.get("target_level", "parton")), self.meta.get("target_options") or {}
        )

    def records(self) -> ak.Array:
        """The draws as the level's ``vector`` records, leading shape ``(B, S)``."""
        return self.level.to_records(self.values, self.mask)

    def truth_records(self) -> ak.Array:
        """The true targets as records, length ``B`` (requires ``truth_values``)."""
        if self.truth_values is None or self.truth_mask is None:
            raise ValueError("this result holds no truth (unfolded data, not simulation)")
        return self.level.to_records(self.truth_values, self.truth_mask)

    def observable(self, fn: Callable[[ak.Array], Any], *, truth: bool = False) -> np.ndarray:
        """``fn(records)`` as a numpy array: ``(B, S)`` for the draws, ``(B,)`` for truth.

        Example: ``result.observable(lambda r: r.t_had.mass)``.
        """
        rec = self.truth_records() if truth else self.records()
        return np.asarray(ak.to_numpy(fn(rec)), dtype=np.float64)

    def event_weights(self, variation: str | None = None) -> np.ndarray:
        """``weight`` times the systematic variation ``variation`` (None: nominal)."""
        if variation is None:
            return self.weight
        if variation not in self.systematics:
            raise KeyError(
                f"no systematic variation {variation!r}; the file has {sorted(self.systematics)}"
            )
        return self.weight * self.systematics[variation]

    def histogram(
        self,
        x: np.ndarray,
        edges: Sequence[float] | np.ndarray,
        *,
        variation: str | None = None,
        extra_weights: np.ndarray | None = None,
    ) -> HistogramResult:
        """Histogram of per-draw values ``x (B, S)`` (e.g. from :meth:`observable`) with
        the bootstrap (stat) and posterior-draw uncertainties separated."""
        w = self.event_weights(variation)
        if extra_weights is not None:
            w = w * np.asarray(extra_weights, np.float64)
        return histogram(x, edges, weights=w, bootstrap=self.bootstrap)


def checkpoint_sha256(checkpoint: str | Path, *, use_ema: bool = True) -> str:
    """SHA-256 of the weights file a model was loaded from (``ema`` if present)."""
    from hepvld.training.checkpoint import find_checkpoint

    ckpt = find_checkpoint(checkpoint)
    f = ckpt / "ema.safetensors"
    if not (use_ema and f.exists()):
        f = ckpt / "model.safetensors"
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- writing and reading --------------------------------------------------------------
def write_unbinned(path: str | Path, result: UnbinnedResult, *, compression: str = "gzip") -> None:
    """Write ``result`` to ``path`` (HDF5; replaced atomically via a temporary file)."""
    import h5py

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    opts: dict[str, Any] = {"compression": compression} if compression != "none" else {}
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["version"] = FORMAT_VERSION
        f.attrs["meta"] = json.dumps(result.meta, sort_keys=True)
        f.create_dataset("event", data=np.asarray(result.event, np.uint64))
        f.create_dataset("weight", data=np.asarray(result.weight, np.float64))
        g = f.create_group("draws")
        g.create_dataset("values", data=np.asarray(result.values, np.float32), **opts)
        g.create_dataset("mask", data=np.asarray(result.mask, bool), **opts)
        f.create_dataset("bootstrap", data=np.asarray(result.bootstrap, np.uint16), **opts)
        s = f.create_group("systematics")
        for name, w in result.systematics.items():
            s.create_dataset(name, data=np.asarray(w, np.float64))
        if result.truth_values is not None and result.truth_mask is not None:
            t = f.create_group("truth")
            t.create_dataset("values", data=np.asarray(result.truth_values, np.float32), **opts)
            t.create_dataset("mask", data=np.asarray(result.truth_mask, bool), **opts)
    tmp.replace(path)


def read_unbinned(path: str | Path) -> UnbinnedResult:
    """Read a file written by :func:`write_unbinned` (any version up to the current)."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise UnbinnedFormatError(f"{path}: not a readable HDF5 file ({err})") from None
    with f:
        fmt = f.attrs.get("format")
        if fmt != FORMAT_NAME:
            raise UnbinnedFormatError(
                f"{path}: attribute format={fmt!r}, not {FORMAT_NAME!r}; write it with "
                "`python -m hepvld.unfold --format hdf5`"
            )
        version = int(f.attrs.get("version", -1))
        if not 1 <= version <= FORMAT_VERSION:
            raise UnbinnedFormatError(
                f"{path}: format version {version}; this hepvld reads versions 1 to "
                f"{FORMAT_VERSION} (upgrade hepvld)"
            )
        missing = [
            k for k in ("event", "weight", "draws/values", "draws/mask", "bootstrap") if k not in f
        ]
        if missing:
            raise UnbinnedFormatError(f"{path}: missing datasets {missing}")
        truth = f.get("truth", None)
        return UnbinnedResult(
            event=f["event"][()],
            values=f["draws/values"][()],
            mask=f["draws/mask"][()],
            weight=f["weight"][()],
            bootstrap=f["bootstrap"][()],
            systematics={k: v[()] for k, v in f["systematics"].items()}
            if "systematics" in f
            else {},
            truth_values=truth["values"][()] if truth is not None else None,
            truth_mask=truth["mask"][()] if truth is not None else None,
            meta=json.loads(f.attrs["meta"]),
        )


def unfold_to_unbinned(
    files: Any,
    *,
    model: Any,
    checkpoint: str | Path | None = None,
    n_replicas: int = 100,
    bootstrap_seed: int = 0,
    chunk_events: int = 20_000,
    tree: str = "Events",
    max_events: int | None = None,
    on_nonfinite: str = "raise",
    with_truth: bool = True,
    systematics: Mapping[str, Callable[[ak.Array], np.ndarray]] | None = None,
    meta: Mapping[str, Any] | None = None,
    **unfold_kwargs: Any,
) -> UnbinnedResult:
    """Unfold ``files`` chunk by chunk into an :class:`UnbinnedResult`.

    ``with_truth``: also store the true target where the input has it (NaN rows where the
    chain is missing). ``systematics``: ``{name: fn(selected events) -> (B,) weight
    factors}``. Other keywords go to :func:`hepvld.unfold` (``n_samples``, ``sampler``,
    ``steps``, ``seed``, ``batch_size``).
    """
    import hepvld
    from hepvld.api import _as_unfolding_model, sampler_spec, unfold
    from hepvld.features import select
    from hepvld.features.selection import Cutflow
    from hepvld.io import iterate_events

    um = _as_unfolding_model(model, unfold_kwargs.pop("device", None))
    level = um.level
    paths = [str(f) for f in files] if isinstance(files, (list, tuple)) else files
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("event", "values", "mask", "weight", "tv", "tm")
    }
    syst: dict[str, list[np.ndarray]] = {k: [] for k in (systematics or {})}
    cutflow = Cutflow()
    has_truth = with_truth
    for events in iterate_events(
        paths,
        tree=tree,
        step_size=chunk_events,
        entry_stop=max_events,
        on_nonfinite=on_nonfinite,  # type: ignore[arg-type]
    ):
        out = unfold(events, model=um, raw=True, progress=False, **unfold_kwargs)
        cutflow = cutflow + out.attrs["cutflow"]
        sel_mask, _ = select(events, require_truth=False)
        sel = events[np.asarray(sel_mask, bool)]
        rows = ak.drop_none(out, axis=0)
        raw = np.asarray(ak.to_numpy(rows["raw"]), np.float32)
        vals = raw.reshape(len(raw), raw.shape[1], *level.shape)
        if "raw_mask" in ak.fields(rows):
            m = np.asarray(ak.to_numpy(rows["raw_mask"]), bool)
        elif level.fixed_multiplicity:
            m = np.ones(vals.shape[:3], bool)
        else:
            raise ValueError(f"level {level.name!r}: hepvld.unfold returned no draw mask")
        parts["event"].append(ak.to_numpy(sel["event"]).astype(np.uint64))
        parts["values"].append(vals)
        parts["mask"].append(m)
        w = ak.to_numpy(sel["genWeight"]) if "genWeight" in ak.fields(sel) else np.ones(len(sel))
        parts["weight"].append(np.asarray(w, np.float64))
        if has_truth:
            try:
                tt = level.build(sel, on_invalid="nan")
                parts["tv"].append(tt.values)
                parts["tm"].append(tt.mask)
            except Exception as err:  # no truth collections: unfolded data
                log.info("no truth stored (%s)", err)
                has_truth = False
        for name, fn in (systematics or {}).items():
            syst[name].append(np.asarray(fn(sel), np.float64))
    if not parts["event"]:
        raise ValueError(f"{files}: no events read")
    cat = {
        k: np.concatenate(v) for k, v in parts.items() if v and (has_truth or k not in ("tv", "tm"))
    }
    ckpt_hash = checkpoint_sha256(checkpoint) if checkpoint is not None else None
    spec = sampler_spec(unfold_kwargs.get("sampler", "dpmpp2m"), unfold_kwargs.get("steps"))
    info = {
        "model": um.name,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "checkpoint_sha256": ckpt_hash,
        "checkpoint_step": um.meta.get("step"),
        "training_files": um.meta.get("files"),
        "target_level": level.name,
        "target_options": level.options(),
        "selection": list(cutflow.names),
        "cutflow": cutflow.to_dict(),
        "sampler": {"name": spec.name, "steps": spec.steps, "spacing": spec.spacing},
        "n_samples": int(cat["values"].shape[1]),
        "seed": int(unfold_kwargs.get("seed", 0)),
        "bootstrap_seed": int(bootstrap_seed),
        "n_replicas": int(n_replicas),
        "inputs": [str(p) for p in paths] if isinstance(paths, list) else "in-memory",
        "hepvld_version": hepvld.__version__,
        **dict(meta or {}),
    }
    return UnbinnedResult(
        event=cat["event"],
        values=cat["values"],
        mask=cat["mask"],
        weight=cat["weight"],
        bootstrap=poisson_replicas(cat["event"], n_replicas, bootstrap_seed),
        systematics={k: np.concatenate(v) for k, v in syst.items()},
        truth_values=cat.get("tv"),
        truth_mask=cat.get("tm"),
        meta=info,
    )
