"""The coffea processor: unfold every chunk and histogram observables with a draw axis.

:class:`UnfoldingProcessor` is a picklable bundle of settings (a checkpoint *path*, the
observables, the sampler options). The network is loaded lazily inside
:meth:`~UnfoldingProcessor.process`, on the worker, and cached per worker process
(:func:`cached_model`), so a pickled task never carries tensors.

Output of ``process`` (one chunk), merged by coffea with ``+`` over chunks and files::

    {dataset: {
        "unfolded": {name: Hist(draw, name)},   # each posterior draw filled with genWeight
        "detector": {name: Hist(name)},         # level.detector_records: χ² pseudo-top
        "truth":    {name: Hist(name)},         # hard-process partons (empty without GenPart)
        "truth_all": {name: Hist(name)},        # the same for every input event with a
                                                # truth chain, before the selection
        "cutflow": Cutflow,                     # the hepvld selection, every input event
        "truth_cutflow": Cutflow,               # selected events with a valid truth chain
    }}

With a variable-length (``particle``) model the records are the particle-level objects and
event vector with the particle-level pseudo-top added
(:func:`hepvld.targets.particle_output.with_pseudo_top`), the default observables are
:data:`hepvld.particle_observables.PARTICLE_OBSERVABLES` (multiplicities, leading objects,
MET, pseudo-top), truth is the level's own truth (``GenJet``, ``GenDressedLepton``, ...)
and one more key counts the entries an observable does not exist in (a second b-jet in a
draw with one, a pseudo-top in a draw without enough objects), which are not filled::

        "absent": {name: {"unfolded": n, "detector": n, "truth": n, ...}},

and, at particle level, ``truth_all`` is the particle-level truth of every input event
(before the detector selection) that passes the *particle-level* phase space
(:meth:`ParticleLevel.truth_selection <hepvld.targets.particle.ParticleLevel.truth_selection>`:
the detector cuts applied to ``GenJet`` / ``GenDressedLepton``) with a true neutrino, and
one more histogram set holds the numerator of the efficiency::

        "truth_fiducial": {name: Hist(name)},   # truth of the selected events that pass
                                                # the particle-level phase space too

(``truth`` keeps every selected event, fakes — events outside the particle-level phase
space — included, so it compares with the unfolded draws; ``truth_cutflow`` counts the
three sets).

All three levels are filled for the *same* selected events with the same weight
(``genWeight``), so that ``unfolded[draw=i]``, ``detector`` and ``truth`` compare directly.
The per-bin selection efficiency that corrects an unfolded histogram for inefficiencies
(:mod:`hepvld.acceptance`; meaningful on simulation generated without the selection,
``python -m hepvld.generate --no-select --count generated``) is ``truth / truth_all`` at
parton level and ``truth_fiducial / truth_all`` at particle level (there ``truth /
truth_all`` also counts the fakes in the numerator; ``1 - truth_fiducial / truth`` is the
fake fraction).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from hepvld.features.selection import Cutflow
from hepvld.observables import (
    DEFAULT_OBSERVABLES,
    Binning,
    Observable,
    evaluate,
    resolve_observables,
)
from hepvld.targets import TargetLevel

if TYPE_CHECKING:
    from hepvld.diffusion.samplers import SamplerSpec

__all__ = [
    "DRAW_AXIS",
    "UnfoldingProcessor",
    "cached_model",
    "clear_model_cache",
    "torch_threads",
]

log = logging.getLogger(__name__)

#: Name of the posterior-draw axis (``sample`` is reserved by ``hist``).
DRAW_AXIS = "draw"

_MODEL_CACHE: dict[tuple[str, str], Any] = {}
_MODEL_LOCK = threading.Lock()


def cached_model(checkpoint: str, device: str = "cpu") -> Any:
    """The :class:`hepvld.api.UnfoldingModel` of ``checkpoint`` on ``device``, loaded once
    per process (thread-safe) and reused by every later chunk on this worker."""
    key = (os.fspath(checkpoint), device)
    with _MODEL_LOCK:
        model = _MODEL_CACHE.get(key)
        if model is None:
            from hepvld.api import load

            log.info("loading %s on %s (pid %d)", checkpoint, device, os.getpid())
            model = _MODEL_CACHE[key] = load(checkpoint, device=device)
        return model


def clear_model_cache() -> None:
    """Forget every cached model of this process."""
    with _MODEL_LOCK:
        _MODEL_CACHE.clear()


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Set ``torch.set_num_threads(n)`` inside the block and restore it on exit (``None``:
    leave it alone). The setting is per process: use one thread per dask worker process
    (``threads_per_worker=1``) so that concurrent chunks do not fight over it."""
    if n is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _default_observables(checkpoint: str) -> Sequence[str]:
    """The default observables of the level ``checkpoint`` records (its ``meta.json``)."""
    import json

    try:
        from hepvld.training.checkpoint import find_checkpoint

        with open(find_checkpoint(checkpoint) / "meta.json") as f:
            level = str(json.load(f).get("extra", {}).get("target_level", "parton"))
    except Exception as err:  # unreadable here (a worker-only path): the parton defaults
        log.debug("default observables: cannot read the level of %s (%s)", checkpoint, err)
        return DEFAULT_OBSERVABLES
    if level == "parton":
        return DEFAULT_OBSERVABLES
    from hepvld.particle_observables import PARTICLE_OBSERVABLES

    return PARTICLE_OBSERVABLES


def _dataset(events: Any) -> str:
    try:
        metadata = events.metadata
    except (AttributeError, KeyError, ak.errors.FieldNotFoundError):
        return "events"
    return str((metadata or {}).get("dataset", "events"))


class UnfoldingProcessor(processor.ProcessorABC):
    """Unfold NanoAOD-like events with a trained hepvld model and histogram observables.

    Parameters
    ----------
    checkpoint
        Run directory or checkpoint directory of ``python -m hepvld.train``; it must be
        readable at this path on every worker (made absolute when it exists here).
    observables
        Built-in names (``t_had_pt``, see :mod:`hepvld.observables`; ``n_jets``, ... see
        :mod:`hepvld.particle_observables`) and/or
        :class:`~hepvld.observables.Observable` objects with user callables. Default: the
        level's defaults (:data:`~hepvld.observables.DEFAULT_OBSERVABLES` at parton level,
        :data:`~hepvld.particle_observables.PARTICLE_OBSERVABLES` at particle level, read
        from the checkpoint's metadata; parton's when it cannot be read here).
    binning
        Per-observable binning overrides, ``{name: (n, low, high) or edges}``.
    n_samples
        Posterior draws ``S`` per event (the ``draw`` axis has ``S`` bins).
    sampler, steps
        A :class:`~hepvld.diffusion.SamplerSpec`, or a sampler name (``ddpm``, ``ddim``,
        ``pndm``, ``dpmpp2m``, or ``distilled``: a student of ``hepvld distill`` in the run
        directory) and its number of steps (default 20). Every sampler is
        reproducible per ``(seed, event number)``.
    seed
        With the event numbers, fixes every draw: results do not depend on chunking or
        executor.
    batch_size
        Events per network call.
    device
        Torch device on the worker (``cpu``, ``cuda``, ``cuda:1``, ...).
    torch_threads
        ``torch.set_num_threads`` while a chunk is processed (restored afterwards);
        ``None`` leaves torch's setting alone (use all cores with the iterative executor).
    truth
        Fill truth-level histograms when the events have ``GenPart``.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike[str],
        observables: Sequence[str | Observable] | None = None,
        *,
        binning: Mapping[str, Binning] | None = None,
        n_samples: int = 10,
        sampler: str | SamplerSpec = "dpmpp2m",
        steps: int | None = None,
        seed: int = 0,
        batch_size: int = 1024,
        device: str = "cpu",
        torch_threads: int | None = 1,
        truth: bool = True,
    ) -> None:
        from hepvld.api import sampler_spec

        self.sampler_spec = sampler_spec(sampler, steps, default_steps=20)
        for name, value in (("n_samples", n_samples), ("batch_size", batch_size)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if torch_threads is not None and int(torch_threads) < 1:
            raise ValueError(f"torch_threads must be >= 1 or None, got {torch_threads}")
        path = os.fspath(checkpoint)
        self.checkpoint = os.path.abspath(path) if os.path.exists(path) else path
        if observables is None:
            observables = _default_observables(self.checkpoint)
        self.observables = resolve_observables(observables, binning)
        self.n_samples = int(n_samples)
        self.sampler = self.sampler_spec.name
        self.steps = self.sampler_spec.steps
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.device = device
        self.torch_threads = None if torch_threads is None else int(torch_threads)
        self.truth = bool(truth)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.checkpoint!r}, {len(self.observables)} observables, "
            f"n_samples={self.n_samples}, sampler={self.sampler!r}, steps={self.steps}, "
            f"seed={self.seed}, device={self.device!r})"
        )

    # ------------------------------------------------------------------ output
    def empty_output(self) -> dict[str, Any]:
        """The output of one dataset for zero events (histograms with the final axes)."""
        draw = hist.axis.Integer(
            0,
            self.n_samples,
            name=DRAW_AXIS,
            label="posterior draw",
            underflow=False,
            overflow=False,
        )
        weight = hist.storage.Weight()
        return {
            "unfolded": {
                o.name: hist.Hist(draw, o.axis(), storage=weight) for o in self.observables
            },
            "detector": {o.name: hist.Hist(o.axis(), storage=weight) for o in self.observables},
            "truth": {o.name: hist.Hist(o.axis(), storage=weight) for o in self.observables},
            "truth_all": {o.name: hist.Hist(o.axis(), storage=weight) for o in self.observables},
            "cutflow": Cutflow(),
            "truth_cutflow": Cutflow(),
        }

    # ------------------------------------------------------------------ coffea
    def process(self, events: Any) -> dict[str, dict[str, Any]]:
        """Unfold one chunk and fill the histograms (see the module docstring).

        Parameters
        ----------
        events
            A coffea ``NanoEventsArray`` (``events.metadata["dataset"]`` names the output
            key, ``"events"`` without metadata) or any input of
            :func:`hepvld.io.open_events`.
        """
        with torch_threads(self.torch_threads):
            return {_dataset(events): self._process(events)}

    def postprocess(self, accumulator: Any) -> Any:
        """Nothing to finalise: the merged histograms are the result."""
        return accumulator

    # ------------------------------------------------------------------ internals
    def _process(self, events: Any) -> dict[str, Any]:
        from hepvld.api import unfold
        from hepvld.io import open_events

        out = self.empty_output()
        events = open_events(events)
        model = cached_model(self.checkpoint, self.device)
        result = unfold(
            events,
            model=model,
            n_samples=self.n_samples,
            sampler=self.sampler_spec,
            batch_size=self.batch_size,
            seed=self.seed,
            progress=False,
        )
        out["cutflow"] = result.attrs["cutflow"]
        selected = ~np.asarray(ak.to_numpy(ak.is_none(result, axis=0)), dtype=bool)
        if self.truth and "GenPart" in ak.fields(events):
            # the efficiency denominator, on every input event
            if model.level.fixed_multiplicity:
                self._fill_truth_all(out, events, model.level)
            else:
                self._fill_truth_all_particle(out, events, model.level)
        events = events[selected]
        unfolded = ak.drop_none(result[selected], axis=0)
        weights = np.asarray(ak.to_numpy(events["genWeight"]), dtype=np.float64)
        n, s = len(weights), self.n_samples
        log.debug("chunk: %d events, %d selected", len(selected), n)

        draw = np.broadcast_to(np.arange(s), (n, s)).ravel()
        draw_weights = np.repeat(weights, s)
        detector = model.level.detector_records(events)
        if not model.level.fixed_multiplicity:
            self._fill_variable_length(out, model.level, events, unfolded, detector, weights)
            return out
        for o in self.observables:
            out["unfolded"][o.name].fill(
                draw, evaluate(o, unfolded).reshape(n * s), weight=draw_weights
            )
            out["detector"][o.name].fill(evaluate(o, detector), weight=weights)
        if self.truth and "GenPart" in ak.fields(events):
            self._fill_truth(out, events, weights, model.level)
        return out

    def _fill_truth_all(self, out: dict[str, Any], events: Any, level: TargetLevel) -> None:
        """``truth_all``: every input event with a valid truth chain (before the selection)."""
        if len(events) == 0:
            return
        weights = np.asarray(ak.to_numpy(events["genWeight"]), dtype=np.float64)
        targets = level.build(events, on_invalid="nan")
        valid = np.isfinite(targets.values).all(axis=(1, 2))
        good = targets.subset(valid)
        truth = level.to_records(good.values, good.mask)
        for o in self.observables:
            out["truth_all"][o.name].fill(evaluate(o, truth), weight=weights[valid])

    def _fill_truth_all_particle(
        self, out: dict[str, Any], events: Any, level: TargetLevel
    ) -> None:
        """``truth_all`` of a variable-length level: the particle-level truth (pseudo-top
        added) of every input event that passes the level's truth selection (the
        particle-level phase space) and has a valid truth (a true neutrino)."""
        from hepvld.io.errors import MissingBranchError
        from hepvld.targets.particle_output import with_pseudo_top

        out.setdefault("absent", {o.name: {} for o in self.observables})
        for o in self.observables:
            out["absent"][o.name].setdefault("truth_all", 0)
        if len(events) == 0:
            return
        selection = getattr(level, "truth_selection", None)
        try:
            targets = level.build(events, on_invalid="nan")
            inside = (
                np.ones(len(events), bool)
                if selection is None
                else np.asarray(selection(events).passed, bool)
            )
        except MissingBranchError as err:
            log.info("no particle-level truth_all histograms: %s", err)
            return
        weights = np.asarray(ak.to_numpy(events["genWeight"]), dtype=np.float64)
        keep = np.isfinite(targets.values).all(axis=(1, 2)) & inside
        good = targets.subset(keep)
        truth = with_pseudo_top(level.to_records(good.values, good.mask))
        self._fill_sample(out, "truth_all", truth, weights[keep], None)

    def _fill_sample(
        self,
        out: dict[str, Any],
        key: str,
        records: ak.Array,
        weights: np.ndarray,
        draws: np.ndarray | None,
    ) -> None:
        """Fill ``out[key]`` with every observable of ``records`` (weights per entry,
        ``draws`` the draw index of each flattened entry, or None); values that do not
        exist (NaN / None) are counted in ``out["absent"][name][key]`` instead."""
        for o in self.observables:
            values = o(records)
            if isinstance(values, ak.Array):
                values = ak.to_numpy(ak.fill_none(values, np.nan), allow_missing=False)
            x = np.asarray(values, dtype=np.float64).reshape(-1)
            ok = np.isfinite(x)
            out["absent"][o.name][key] = int((~ok).sum())
            if draws is None:
                out[key][o.name].fill(x[ok], weight=weights[ok])
            else:
                out[key][o.name].fill(draws[ok], x[ok], weight=weights[ok])

    def _fill_truth(
        self, out: dict[str, Any], events: Any, weights: np.ndarray, level: TargetLevel
    ) -> None:
        targets = level.build(events, on_invalid="nan")
        valid = np.isfinite(targets.values).all(axis=(1, 2))
        out["truth_cutflow"].add("selected", len(events), float(weights.sum()))
        out["truth_cutflow"].add("valid truth chain", int(valid.sum()), float(weights[valid].sum()))
        good = targets.subset(valid)
        truth = level.to_records(good.values, good.mask)
        for o in self.observables:
            out["truth"][o.name].fill(evaluate(o, truth), weight=weights[valid])

    # ------------------------------------------------------------------ variable length
    def _fill_variable_length(
        self,
        out: dict[str, Any],
        level: TargetLevel,
        events: Any,
        unfolded: ak.Array,
        detector: ak.Array,
        weights: np.ndarray,
    ) -> None:
        """Fill a variable-length (particle) level: records with the pseudo-top added,
        absent values (NaN / None) counted in ``out["absent"]`` instead of filled."""
        from hepvld.io.errors import MissingBranchError
        from hepvld.targets.particle_output import with_pseudo_top

        n, s = len(weights), self.n_samples
        draw = np.broadcast_to(np.arange(s), (n, s)).ravel()
        samples = {
            "unfolded": (with_pseudo_top(unfolded), np.repeat(weights, s), draw),
            "detector": (with_pseudo_top(detector), weights, None),
        }
        if self.truth:
            try:
                targets = level.build(events, on_invalid="nan")
                selection = getattr(level, "truth_selection", None)
                inside = (
                    np.ones(len(events), bool)
                    if selection is None or len(events) == 0
                    else np.asarray(selection(events).passed, bool)
                )
            except MissingBranchError as err:
                log.info("no particle-level truth histograms: %s", err)
            else:
                valid = np.isfinite(targets.values).all(axis=(1, 2))
                fiducial = valid & inside
                cutflow = out["truth_cutflow"]
                cutflow.add("selected", len(events), float(weights.sum()))
                cutflow.add("valid truth", int(valid.sum()), float(weights[valid].sum()))
                cutflow.add(
                    "valid truth, particle-level phase space",
                    int(fiducial.sum()),
                    float(weights[fiducial].sum()),
                )
                good = targets.subset(valid)
                truth = with_pseudo_top(level.to_records(good.values, good.mask))
                samples["truth"] = (truth, weights[valid], None)
                samples["truth_fiducial"] = (
                    truth[inside[valid]],
                    weights[fiducial],
                    None,
                )
        weight = hist.storage.Weight()
        out["truth_fiducial"] = {
            o.name: hist.Hist(o.axis(), storage=weight) for o in self.observables
        }
        absent = out.setdefault("absent", {o.name: {} for o in self.observables})
        for o in self.observables:
            absent[o.name].update(dict.fromkeys(samples, 0))
        for key, (records, w, draws) in samples.items():
            self._fill_sample(out, key, records, w, draws)
