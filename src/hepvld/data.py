"""Event tensors for training: loading, deterministic splits, model-ready arrays.

``load_tensors`` = read (:func:`hepvld.io.iterate_events`) -> select (cut-flow logged) ->
detector tensors + the target level's targets, chunk by chunk. ``EventTensors`` holds
contiguous numpy arrays. Splits hash the event number (splitmix64), so an event stays in
its split when files are re-ordered, extended or chunked differently. :func:`prepare_data`
(read, split, fit or reuse the preprocessing) gives the arrays training consumes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from hepvld.features.selection import Cutflow
from hepvld.targets import TargetLevel, get_level

__all__ = [
    "SPLIT",
    "EventTensors",
    "load_tensors",
    "prepare_data",
    "split_by_event",
    "split_labels",
    "splitmix64",
]

#: Default train / validation / test fractions of the split by event number.
SPLIT: tuple[float, float, float] = (0.8, 0.1, 0.1)

log = logging.getLogger(__name__)


@dataclass
class EventTensors:
    """Selected events as contiguous numpy arrays.

    Attributes
    ----------
    objects
        ``(B, N, F=12)`` float32 detector objects (:data:`hepvld.features.DETECTOR_FEATURES`).
    mask
        ``(B, N)`` bool.
    globals
        ``(B, G=2)`` float32 ``(MET_pt, MET_phi)``.
    targets
        ``(B, K, H)`` float32 targets of the target level (parton level: ``(B, 11, 5)``,
        physical units), or ``None`` without truth.
    weights
        ``(B,)`` float32 ``genWeight``.
    event
        ``(B,)`` uint64 event numbers.
    cutflow
        Cut-flow of the selection that produced these events (kept unchanged by
        :meth:`subset`; summed by :meth:`concatenate`).
    target_mask
        ``(B, K)`` bool, True for real target slots (all true for a fixed level); built
        as all true when ``targets`` is given without it.
    pass_detector
        ``(B,)`` bool, the event passes the detector-level selection (all true unless
        misses were asked for, :func:`load_tensors` ``include_misses``).
    pass_truth
        ``(B,)`` bool, the event passes the same cuts at the target level (``particle``:
        :meth:`~hepvld.targets.particle.ParticleLevel.truth_selection`; all true for a
        level without a truth selection). ``pass_detector & ~pass_truth`` are *fakes*,
        ``~pass_detector & pass_truth`` *misses*.
    phase_space
        Named counts (and sums of weights): ``pass detector``, ``pass truth``, ``pass
        both``, ``fakes (...)``, ``misses (...)`` over every event read, also those not
        kept (a :class:`Cutflow` used as a mergeable counter; empty for a level without a
        truth selection).
    """

    objects: np.ndarray
    mask: np.ndarray
    globals: np.ndarray
    targets: np.ndarray | None
    weights: np.ndarray
    event: np.ndarray
    cutflow: Cutflow = field(default_factory=Cutflow)
    target_mask: np.ndarray | None = None
    pass_detector: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    pass_truth: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    phase_space: Cutflow = field(default_factory=Cutflow)

    def __post_init__(self) -> None:
        B = len(self.objects)
        if self.targets is not None and self.target_mask is None:
            self.target_mask = np.ones(self.targets.shape[:2], dtype=bool)
        for flag in ("pass_detector", "pass_truth"):
            if len(getattr(self, flag)) == 0 and B:
                setattr(self, flag, np.ones(B, dtype=bool))
        for name in ("mask", "globals", "weights", "event", "pass_detector", "pass_truth") + (
            ("targets", "target_mask") if self.targets is not None else ()
        ):
            if len(getattr(self, name)) != B:
                raise ValueError(
                    f"EventTensors.{name} has {len(getattr(self, name))} rows, objects has {B}"
                )

    def __len__(self) -> int:
        return len(self.objects)

    def subset(self, idx: np.ndarray | slice | Sequence[int]) -> EventTensors:
        """Events ``idx`` (indices, boolean mask or slice), as a new contiguous bundle."""
        if not isinstance(idx, slice):
            idx = np.asarray(idx)

        def take(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a[idx])

        return replace(
            self,
            objects=take(self.objects),
            mask=take(self.mask),
            globals=take(self.globals),
            targets=None if self.targets is None else take(self.targets),
            weights=take(self.weights),
            event=take(self.event),
            target_mask=None if self.target_mask is None else take(self.target_mask),
            pass_detector=take(self.pass_detector),
            pass_truth=take(self.pass_truth),
        )

    @staticmethod
    def concatenate(parts: Sequence[EventTensors]) -> EventTensors:
        """Concatenate bundles (cut-flows are added)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        has_t = [p.targets is not None for p in parts]
        if any(has_t) and not all(has_t):
            raise ValueError("cannot concatenate bundles with and without targets")

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts], axis=0)

        return EventTensors(
            objects=cat("objects"),
            mask=cat("mask"),
            globals=cat("globals"),
            targets=cat("targets") if all(has_t) else None,
            weights=cat("weights"),
            event=cat("event"),
            cutflow=sum((p.cutflow for p in parts), Cutflow()),
            target_mask=cat("target_mask") if all(has_t) else None,
            pass_detector=cat("pass_detector"),
            pass_truth=cat("pass_truth"),
            phase_space=sum((p.phase_space for p in parts), Cutflow()),
        )

    @classmethod
    def empty(
        cls, max_jets: int = 20, with_targets: bool = True, level: str | TargetLevel = "parton"
    ) -> EventTensors:
        """A correctly shaped bundle of 0 events (targets shaped by ``level``)."""
        from hepvld.features import DETECTOR_FEATURES, GLOBAL_FEATURES

        n = 1 + max_jets
        t = get_level(level).empty() if with_targets else None
        return cls(
            np.zeros((0, n, len(DETECTOR_FEATURES)), np.float32),
            np.zeros((0, n), bool),
            np.zeros((0, len(GLOBAL_FEATURES)), np.float32),
            None if t is None else t.values,
            np.zeros(0, np.float32),
            np.zeros(0, np.uint64),
            target_mask=None if t is None else t.mask,
        )


def _phase_space(
    pass_det: np.ndarray, pass_truth: np.ndarray, w: np.ndarray
) -> tuple[Cutflow, dict[str, np.ndarray]]:
    groups = {
        "pass detector": pass_det,
        "pass truth": pass_truth,
        "pass both": pass_det & pass_truth,
        "fakes (pass detector, fail truth)": pass_det & ~pass_truth,
        "misses (pass truth, fail detector)": ~pass_det & pass_truth,
    }
    cf = Cutflow()
    for name, m in groups.items():
        cf.add(name, int(m.sum()), float(w[m].sum()))
    return cf, groups


def _tensors_of(
    events: Any, max_jets: int, require_truth: bool, level: TargetLevel, include_misses: bool
) -> EventTensors:
    import awkward as ak

    from hepvld.features import detector_tensors, select
    from hepvld.io import TruthError
    from hepvld.io.reader import SOURCE_ATTR

    mask, cutflow = select(events, require_truth=require_truth)
    w_all = np.asarray(ak.to_numpy(events.genWeight), dtype=np.float64)
    truth_selection = getattr(level, "truth_selection", None) if require_truth else None
    phase_space = Cutflow()
    if truth_selection is None:
        pass_det = pass_truth = np.ones(int(mask.sum()), dtype=bool)
    else:
        truth = truth_selection(events)
        pass_truth_all = np.asarray(truth.passed, dtype=bool)
        cutflow = cutflow + truth.cutflow(w_all, within=mask, prefix="truth: ")
        phase_space, _ = _phase_space(mask, pass_truth_all, w_all)
        keep = mask | pass_truth_all if include_misses else mask
        pass_det, pass_truth = mask[keep], pass_truth_all[keep]
        mask = keep
    sel = events[mask]
    det = detector_tensors(sel, max_jets)
    try:
        targets = level.build(sel) if require_truth else None
    except TruthError as err:
        where = events.attrs.get(SOURCE_ATTR) if hasattr(events, "attrs") else None
        raise (TruthError(f"{where}: {err}") if where else err) from None
    return EventTensors(
        objects=det.objects,
        mask=det.mask,
        globals=det.globals,
        targets=None if targets is None else targets.values,
        target_mask=None if targets is None else targets.mask,
        weights=np.asarray(ak.to_numpy(sel.genWeight), dtype=np.float32),
        event=np.asarray(ak.to_numpy(sel.event), dtype=np.uint64),
        cutflow=cutflow,
        pass_detector=pass_det,
        pass_truth=pass_truth,
        phase_space=phase_space,
    )


def load_tensors(
    source: Any,
    *,
    max_jets: int = 20,
    require_truth: bool = True,
    entry_stop: int | None = None,
    step_size: int = 200_000,
    level: str | TargetLevel = "parton",
    include_misses: bool = False,
    reader: str = "auto",
    **open_kwargs: Any,
) -> EventTensors:
    """Read, select and convert events to tensors.

    Parameters
    ----------
    source
        Path(s) or an awkward / coffea events array (see :func:`hepvld.io.open_events`).
    max_jets
        Jet slots; ``N = 1 + max_jets``.
    require_truth
        Require a semi-leptonic tt̄ ``GenPart`` chain and build the targets of ``level``
        (``(B, 11, 5)`` at parton level); ``False`` for data without truth (``targets``
        is ``None``).
    entry_stop
        Read at most this many entries (before selection).
    step_size
        Events per chunk read at once (memory bound).
    level
        The target level (name or object, :mod:`hepvld.targets`). A level with a truth
        selection (``particle``) also applies the detector cuts at its own level: the
        cut-flow continues with ``truth: ...`` entries (among detector-selected events;
        its last entry counts events passing both), every event is flagged
        (``pass_detector``, ``pass_truth``) and the fakes / misses are counted by name in
        ``phase_space``.
        ``.h5`` / ``.hdf5`` paths are read as the VL-VLD R&D dataset
        (:func:`hepvld.io.iterate_events` -> :func:`hepvld.io.lvd.iterate_lvd`).
    include_misses
        Also keep events that fail the detector selection but pass the truth selection
        (misses, ``pass_detector`` False) for efficiency studies; by default only
        detector-selected events are returned (fakes included, flagged).
    reader
        ``"auto"`` (default): the columnar path (:mod:`hepvld.columnar`: only the needed
        branches, flat arrays, the same tensors) where it covers the input (ROOT files,
        parton level or no truth), else the event path; ``"events"``: always the event
        path (event records of :func:`hepvld.io.iterate_events`); ``"columnar"``: the
        columnar path or a ``ValueError`` saying why not. The columnar path does not
        read, hence does not validate, branches the tensors do not use (``GenJet_*``,
        ...).
    **open_kwargs
        Passed to :func:`hepvld.io.iterate_events` (``tree``, ``schema``, ...).

    Returns
    -------
    EventTensors
        Selected events; the cut-flow is logged, with the number dropped at each cut.
    """
    from hepvld.io import iterate_events

    if reader not in ("auto", "columnar", "events"):
        raise ValueError(f"reader={reader!r}; choose 'auto', 'columnar' or 'events'")
    target_level = get_level(level)
    why = None
    if reader != "events":
        from hepvld.columnar import unsupported

        why = unsupported(source, target_level, require_truth, open_kwargs)
        if why is not None and reader == "columnar":
            raise ValueError(f"reader='columnar' does not cover this input: {why}")
    if reader != "events" and why is None:
        parts = _columnar_parts(
            source,
            max_jets,
            require_truth,
            target_level,
            include_misses,
            step_size,
            entry_stop,
            open_kwargs,
        )
    else:
        parts = [
            _tensors_of(chunk, max_jets, require_truth, target_level, include_misses)
            for chunk in iterate_events(
                source, step_size=step_size, entry_stop=entry_stop, **open_kwargs
            )
        ]
    if len(parts) == 1:
        out = parts[0]  # the same arrays as concatenate() would copy
    elif parts:
        out = EventTensors.concatenate(parts)
    else:
        out = EventTensors.empty(max_jets, require_truth, target_level)
    _log_loaded(source, out)
    return out


def _columnar_parts(
    source: Any,
    max_jets: int,
    require_truth: bool,
    level: TargetLevel,
    include_misses: bool,
    step_size: int,
    entry_stop: int | None,
    open_kwargs: dict[str, Any],
) -> list[EventTensors]:
    from hepvld.columnar import tensors_of_columns, wanted
    from hepvld.io.columns import iterate_columns

    parts = []
    for chunk in iterate_columns(
        source, wanted(require_truth), step_size=step_size, entry_stop=entry_stop, **open_kwargs
    ):
        if chunk.events is not None:  # handed to the event reader (module hepvld.io.columns)
            parts.append(_tensors_of(chunk.events, max_jets, require_truth, level, include_misses))
        else:
            parts.append(tensors_of_columns(chunk, max_jets, require_truth, level))
    return parts


def _log_loaded(source: Any, out: EventTensors) -> None:
    name = source if isinstance(source, (str, os.PathLike)) else type(source).__name__
    cf = out.cutflow
    log.info(
        "load_tensors(%s): kept %d of %d events (dropped %d)\n%s",
        name,
        len(out),
        cf.total,
        cf.total - len(out),
        cf,
    )
    if len(out.phase_space):
        counts = ", ".join(f"{n}: {c}" for n, c in out.phase_space.as_dict().items())
        log.info("load_tensors(%s): detector vs truth phase space: %s", name, counts)


# ----------------------------------------------------------------------------- splits
_BUCKETS = 10_000


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, elementwise on ``uint64`` (wrap-around arithmetic)."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def split_labels(
    event: np.ndarray, fractions: Sequence[float] = (0.8, 0.1, 0.1), *, salt: int = 0
) -> np.ndarray:
    """Split index (0, 1, ...) of each event from ``splitmix64(event ^ salt) % 10000``.

    Parameters
    ----------
    event
        ``(B,)`` event numbers (unique per event; see docs/readers.md for several files).
    fractions
        Fractions per split, summing to 1 (resolution 1e-4).
    salt
        Changes the assignment (a different but equally stable split).

    Returns
    -------
    np.ndarray
        ``(B,)`` int8 labels.
    """
    f = np.asarray(fractions, dtype=np.float64)
    if (f < 0).any() or abs(f.sum() - 1.0) > 1e-9:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {tuple(fractions)}")
    with np.errstate(over="ignore"):
        bucket = splitmix64(np.asarray(event, dtype=np.uint64) ^ np.uint64(salt)) % np.uint64(
            _BUCKETS
        )
    edges = np.round(np.cumsum(f) * _BUCKETS).astype(np.uint64)
    return np.searchsorted(edges, bucket, side="right").astype(np.int8)


def split_by_event(
    tensors: EventTensors, fractions: Sequence[float] = (0.8, 0.1, 0.1), *, salt: int = 0
) -> tuple[EventTensors, ...]:
    """Deterministic split of ``tensors`` by hashed event number (e.g. train/val/test)."""
    labels = split_labels(tensors.event, fractions, salt=salt)
    return tuple(tensors.subset(np.flatnonzero(labels == i)) for i in range(len(fractions)))


# ----------------------------------------------------------------------------- model inputs
def prepare_data(
    files: Sequence[str | Path],
    *,
    max_jets: int,
    tree: str = "Events",
    entry_stop: int | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    level: str | TargetLevel = "parton",
    split: Sequence[float] = SPLIT,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Read, split and preprocess; returns ``(train, val, preprocessing_state)``.

    ``train``/``val`` are dicts of float32 / bool numpy arrays in the model's input space
    (``objects (B, N, F)``, ``mask (B, N)``, ``globals (B, G)``, ``targets (B, K, H)``
    standardised by the level's preprocessing, ``target_mask (B, K)``, ``weights (B,)``; a
    level with ``candidate_slots`` (``particle``) adds ``candidate_slots (B, 5)`` int64, the
    pseudo-top assignment of the true targets).
    ``preprocessing`` (a checkpoint's metadata with ``detector_preprocessor`` and
    ``target_preprocessor``) is reused instead of refitting. The test part of the split
    is never touched.

    Raises
    ------
    ValueError
        When no event passes the selection (the message holds the cut-flow).
    """
    from hepvld.features import DetectorPreprocessor

    target_level = get_level(level)
    names = [str(f) for f in files]
    tensors = load_tensors(
        names,
        max_jets=max_jets,
        require_truth=True,
        entry_stop=entry_stop,
        tree=tree,
        level=target_level,
    )
    if len(tensors) == 0:
        raise ValueError(f"no event of {names} passes the selection:\n{tensors.cutflow}")
    train_on = getattr(target_level, "train_on", None)
    if train_on is not None:
        keep = np.asarray(train_on(tensors.pass_detector, tensors.pass_truth), dtype=bool)
        if not keep.all():
            log.info(
                "%d of %d selected events are fakes (pass detector, fail truth) and are not "
                "trained on (level options %s; phase_space='wide' trains on them)",
                int((~keep).sum()),
                len(keep),
                target_level.options(),
            )
        tensors = tensors.subset(np.flatnonzero(keep))
        if len(tensors) == 0:
            raise ValueError(f"no event of {names} passes both selections:\n{tensors.cutflow}")
    train, val, test = split_by_event(tensors, split)
    log.info(
        "split by event number: %d train, %d validation, %d test (held out)",
        len(train),
        len(val),
        len(test),
    )
    if preprocessing is None:
        det_pre = DetectorPreprocessor().fit(train.objects, train.mask, train.globals)
        assert train.targets is not None and train.target_mask is not None
        tgt_pre = target_level.preprocessing().fit(train.targets, train.target_mask, train.weights)
    else:
        det_pre = DetectorPreprocessor.from_state_dict(preprocessing["detector_preprocessor"])
        tgt_pre = target_level.preprocessing(preprocessing["target_preprocessor"])

    candidate_slots = getattr(target_level, "candidate_slots", None)

    def arrays(part: EventTensors) -> dict[str, np.ndarray]:
        assert part.targets is not None and part.target_mask is not None
        objects, globals_ = det_pre.transform(part.objects, part.mask, part.globals)
        out = {
            "objects": np.asarray(objects, np.float32),
            "mask": part.mask,
            "globals": np.asarray(globals_, np.float32),
            "targets": np.asarray(tgt_pre.transform(part.targets, part.target_mask), np.float32),
            "target_mask": part.target_mask,
            "weights": np.asarray(part.weights, np.float32),
        }
        if candidate_slots is not None:
            # once per load: the pseudo-top assignment of the true targets (VL-VLD's
            # candidate term reads it, hepvld.models.vlvld)
            out["candidate_slots"] = candidate_slots(part.targets, part.target_mask)
        return out

    state = {
        "detector_preprocessor": det_pre.state_dict(),
        "target_preprocessor": tgt_pre.state_dict(),
    }
    return arrays(train), arrays(val), state
