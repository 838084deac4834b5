"""Event tensors for training: loading, a torch Dataset, fast batching, deterministic splits.

``load_tensors`` = read (:func:`hepvld.io.iterate_events`) -> select (cut-flow logged) ->
detector tensors + parton targets, chunk by chunk. ``EventTensors`` holds contiguous numpy
arrays; ``iterate_batches`` slices contiguous torch tensors (no per-item collate), which
is much faster than a ``DataLoader`` with the default collate. Splits hash the event
number (splitmix64), so an event stays in its split when files are re-ordered, extended or
chunked differently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from hepvld.features.selection import Cutflow

if TYPE_CHECKING:
    import torch

__all__ = [
    "EventTensors",
    "UnfoldingDataset",
    "iterate_batches",
    "load_tensors",
    "split_by_event",
    "split_labels",
    "splitmix64",
]

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
        ``(B, X=55)`` float32 parton targets, or ``None`` without truth.
    weights
        ``(B,)`` float32 ``genWeight``.
    event
        ``(B,)`` uint64 event numbers.
    cutflow
        Cut-flow of the selection that produced these events (kept unchanged by
        :meth:`subset`; summed by :meth:`concatenate`).
    """

    objects: np.ndarray
    mask: np.ndarray
    globals: np.ndarray
    targets: np.ndarray | None
    weights: np.ndarray
    event: np.ndarray
    cutflow: Cutflow = field(default_factory=Cutflow)

    def __post_init__(self) -> None:
        B = len(self.objects)
        for name in ("mask", "globals", "weights", "event") + (
            ("targets",) if self.targets is not None else ()
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

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.ascontiguousarray(a[idx])

        return replace(
            self,
            objects=take(self.objects),
            mask=take(self.mask),
            globals=take(self.globals),
            targets=take(self.targets),
            weights=take(self.weights),
            event=take(self.event),
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
        )

    @classmethod
    def empty(cls, max_jets: int = 20, with_targets: bool = True) -> EventTensors:
        """A correctly shaped bundle of 0 events."""
        n = 1 + max_jets
        return cls(
            np.zeros((0, n, 12), np.float32),
            np.zeros((0, n), bool),
            np.zeros((0, 2), np.float32),
            np.zeros((0, 55), np.float32) if with_targets else None,
            np.zeros(0, np.float32),
            np.zeros(0, np.uint64),
        )


def _tensors_of(events: Any, max_jets: int, require_truth: bool) -> EventTensors:
    import awkward as ak

    from hepvld.features import detector_tensors, select
    from hepvld.physics import parton_targets

    mask, cutflow = select(events, require_truth=require_truth)
    sel = events[mask]
    det = detector_tensors(sel, max_jets)
    return EventTensors(
        objects=det.objects,
        mask=det.mask,
        globals=det.globals,
        targets=parton_targets(sel) if require_truth else None,
        weights=np.asarray(ak.to_numpy(sel.genWeight), dtype=np.float32),
        event=np.asarray(ak.to_numpy(sel.event), dtype=np.uint64),
        cutflow=cutflow,
    )


def load_tensors(
    source: Any,
    *,
    max_jets: int = 20,
    require_truth: bool = True,
    entry_stop: int | None = None,
    step_size: int = 200_000,
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
        Require a semi-leptonic tt̄ ``GenPart`` chain and build ``targets (B, 55)``;
        ``False`` for data without truth (``targets`` is ``None``).
    entry_stop
        Read at most this many entries (before selection).
    step_size
        Events per chunk read at once (memory bound).
    **open_kwargs
        Passed to :func:`hepvld.io.iterate_events` (``tree``, ``schema``, ...).

    Returns
    -------
    EventTensors
        Selected events; the cut-flow is logged, with the number dropped at each cut.
    """
    from hepvld.io import iterate_events

    parts = [
        _tensors_of(chunk, max_jets, require_truth)
        for chunk in iterate_events(
            source, step_size=step_size, entry_stop=entry_stop, **open_kwargs
        )
    ]
    out = EventTensors.concatenate(parts) if parts else EventTensors.empty(max_jets, require_truth)
    name = source if isinstance(source, (str, os.PathLike)) else type(source).__name__
    cf = out.cutflow
    log.info(
        "load_tensors(%s): kept %d of %d events (dropped %d)\n%s",
        name,
        cf.passed,
        cf.total,
        cf.total - cf.passed,
        cf,
    )
    return out


# ----------------------------------------------------------------------------- torch
def _torch_fields(t: EventTensors) -> dict[str, torch.Tensor]:
    import torch

    fields = {
        "objects": torch.from_numpy(np.ascontiguousarray(t.objects, dtype=np.float32)),
        "mask": torch.from_numpy(np.ascontiguousarray(t.mask, dtype=bool)),
        "globals": torch.from_numpy(np.ascontiguousarray(t.globals, dtype=np.float32)),
        "weights": torch.from_numpy(np.ascontiguousarray(t.weights, dtype=np.float32)),
        "index": torch.arange(len(t), dtype=torch.int64),
    }
    if t.targets is not None:
        fields["targets"] = torch.from_numpy(np.ascontiguousarray(t.targets, dtype=np.float32))
    return fields


class UnfoldingDataset:
    """``torch.utils.data.Dataset``-compatible view of :class:`EventTensors`.

    Items are dicts of tensors with keys ``objects (N, F)``, ``mask (N,)``, ``globals (G,)``,
    ``targets (X,)`` (when present), ``weights ()`` and ``index ()`` (row in the bundle).
    ``__getitems__`` returns one dict of batched tensors; with a ``DataLoader`` use
    ``collate_fn=UnfoldingDataset.collate`` (identity). Tensors share memory with the numpy
    arrays (preprocess the arrays first).
    """

    def __init__(self, tensors: EventTensors) -> None:
        self.tensors = tensors
        self.fields = _torch_fields(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.fields.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        import torch

        idx = torch.as_tensor(indices, dtype=torch.int64)
        return {k: v.index_select(0, idx) for k, v in self.fields.items()}

    @staticmethod
    def collate(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Identity collate for ``DataLoader(..., collate_fn=UnfoldingDataset.collate)``."""
        return batch


def iterate_batches(
    tensors: EventTensors | UnfoldingDataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield dicts of batched tensors (keys as in :class:`UnfoldingDataset`).

    Parameters
    ----------
    tensors
        The events.
    batch_size
        Events per batch ``B``.
    shuffle
        Random order from ``torch.randperm(generator=generator)`` (no global seeding).
    generator
        Source of randomness for the shuffle.
    drop_last
        Skip a final incomplete batch.
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ds = tensors if isinstance(tensors, UnfoldingDataset) else UnfoldingDataset(tensors)
    n = len(ds)
    order = torch.randperm(n, generator=generator) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for lo in range(0, stop, batch_size):
        hi = min(lo + batch_size, n)
        if order is None:
            yield {k: v[lo:hi] for k, v in ds.fields.items()}
        else:
            idx = order[lo:hi]
            yield {k: v.index_select(0, idx) for k, v in ds.fields.items()}


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
