"""Evaluation events of a particle-level model: truth, the split, the draws.

``python -m hepvld.evaluate`` detects the level from the checkpoint; for a
variable-length level it reads events with :func:`load_particle_events` (detector
selection, then the particle-level phase space, the held-out split by event number as in
training), unfolds them with :func:`unfold_particle_draws` and hands both to
:func:`hepvld.evaluation.particle_report.write_particle_report`.

Events are kept when they pass the detector selection **and** the particle-level phase
space (the detector cuts applied to the truth) and have a true neutrino: fakes (detector
but not particle level) and events without a semi-leptonic chain are counted in the log,
not compared (the truth of a fake is outside the unfolded phase space).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ParticleEvents", "load_particle_events", "unfold_particle_draws"]

log = logging.getLogger("hepvld.evaluate")

_SPLIT_INDEX = {"train": 0, "validation": 1, "test": 2}


@dataclass
class ParticleEvents:
    """Selected events with their particle-level truth.

    Attributes
    ----------
    events : ak.Array
        ``B`` events (input of :func:`hepvld.unfold`).
    values : ndarray, shape (B, K, H)
    mask : ndarray, shape (B, K)
        Particle-level truth (physical units).
    weights : ndarray, shape (B,)
    description : str
    """

    events: Any
    values: np.ndarray
    mask: np.ndarray
    weights: np.ndarray
    description: str

    def __len__(self) -> int:
        return len(self.values)

    def subset(self, keep: np.ndarray) -> ParticleEvents:
        return ParticleEvents(
            self.events[keep],
            self.values[keep],
            self.mask[keep],
            self.weights[keep],
            self.description,
        )


def load_particle_events(
    files: Sequence[str | Path],
    level: Any,
    *,
    split: str,
    fractions: Sequence[float],
    tree: str = "Events",
    max_events: int | None = None,
) -> ParticleEvents:
    """Read ``files`` and keep the ``split`` (``train``, ``validation``, ``test`` by hashed
    event number with ``fractions``, or ``all``) of the events in both phase spaces."""
    import awkward as ak

    from hepvld.data import split_labels
    from hepvld.features import select
    from hepvld.io import open_events

    names = ", ".join(str(f) for f in files)
    events = open_events([str(f) for f in files], tree=tree, entry_stop=max_events)
    det, cutflow = select(events, require_truth=False)
    det = np.asarray(det, dtype=bool)
    events = events[det]
    passed = np.asarray(level.truth_selection(events).passed, dtype=bool)
    truth = level.build(events, on_invalid="nan")
    has_nu = np.isfinite(truth.values).all(axis=(1, 2))
    keep = passed & has_nu
    log.info(
        "%s: %d of %d events pass the detector selection; %d of them are fakes (fail the "
        "particle-level phase space), %d have no true neutrino; %d are compared",
        names,
        int(det.sum()),
        len(det),
        int((~passed).sum()),
        int((passed & ~has_nu).sum()),
        int(keep.sum()),
    )
    log.debug("detector selection:\n%s", cutflow)
    events, truth = events[keep], truth.subset(keep)
    description = f"all {len(events)} events in both phase spaces of {names}"
    if split != "all":
        if split not in _SPLIT_INDEX or len(fractions) <= _SPLIT_INDEX[split]:
            raise ValueError(f"split {split!r} is not available with fractions {tuple(fractions)}")
        labels = split_labels(ak.to_numpy(events["event"]).astype(np.uint64), fractions)
        part = labels == _SPLIT_INDEX[split]
        events, truth = events[part], truth.subset(part)
        description = (
            f"{split} split ({fractions[_SPLIT_INDEX[split]]:.0%} by event number) of "
            f"{names}: {len(events)} events"
        )
    return ParticleEvents(
        events,
        np.asarray(truth.values, np.float64),
        np.asarray(truth.mask, bool),
        np.asarray(ak.to_numpy(events["genWeight"]), np.float64),
        description,
    )


def unfold_particle_draws(
    data: ParticleEvents,
    model: Any,
    *,
    n_samples: int,
    sampler: str,
    steps: int,
    batch_size: int,
    seed: int,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws of every event: ``values (B, S, K, H)``, ``mask (B, S, K)`` (rows of events the
    model rejects are NaN / False) and ``ok (B,)``."""
    import awkward as ak

    from hepvld.api import unfold

    out = unfold(
        data.events,
        model=model,
        n_samples=n_samples,
        sampler=sampler,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        device=device,
        raw=True,
    )
    k, h = model.level.shape
    ok = ~ak.to_numpy(ak.is_none(out, axis=0))
    values = np.full((len(data), n_samples, k, h), np.nan)
    mask = np.zeros((len(data), n_samples, k), dtype=bool)
    if ok.any():
        rows = ak.drop_none(out, axis=0)
        values[ok] = ak.to_numpy(rows.raw).reshape(-1, n_samples, k, h)
        mask[ok] = ak.to_numpy(rows.raw_mask)
    return values, mask, ok
