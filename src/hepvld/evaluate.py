"""Evaluation data for ``hepvld evaluate`` (the command line is :mod:`hepvld.cli.evaluate`).

``hepvld evaluate --checkpoint RUN --data test.root -o report/`` loads every checkpoint, reads the evaluation events, unfolds them with
:func:`hepvld.unfold` (``raw=True``), takes their parton-level truth with
the parton level (:data:`hepvld.targets.PARTON`) and hands everything to
:func:`hepvld.evaluation.write_report` (tables in Markdown/CSV/JSON, figures, a one-page
HTML summary). See ``docs/evaluation.md`` for every number in the report.

Which events (``--split``):

* ``test`` (default): the held-out test part of ``--data``, split by hashed event number
  exactly as ``python -m hepvld.train`` did (fractions from the checkpoint's ``split``),
  so evaluating on the training file never touches training events;
* ``all``: every selected event of ``--data`` (a separately generated file).

Training truth (no-information reference, truth floor, brute-force posterior): the
*train* part of the checkpoint's training files (``meta["files"]``) when they can be
read; otherwise none is used: the floor comes from the test truth split in halves and
the reference from the test truth marginal (the report and the log say so).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EvaluationData", "load_evaluation_data", "load_training_truth", "main", "unfold_draws"]

log = logging.getLogger("hepvld.evaluate")

#: Index of each part in the ``split`` fractions written by ``python -m hepvld.train``.
_TRAIN, _TEST = 0, 2


@dataclass
class EvaluationData:
    """Selected evaluation events and what the report needs of them.

    Attributes
    ----------
    events : ak.Array
        ``B`` selected events (NanoAOD-like records), input of :func:`hepvld.unfold`.
    truth : ndarray, shape (B, 55)
        Parton-level targets in physical units.
    weights : ndarray, shape (B,)
        ``genWeight``.
    features : ndarray, shape (B, K)
        Flattened detector features (:func:`hepvld.evaluation.flatten_detector`).
    description : str
        Which events these are (for the log and the report title).
    """

    events: Any
    truth: np.ndarray
    weights: np.ndarray
    features: np.ndarray
    description: str

    def __len__(self) -> int:
        return len(self.truth)

    def subset(self, keep: np.ndarray) -> EvaluationData:
        """Events where ``keep (B,)`` is True."""
        return EvaluationData(
            self.events[keep],
            self.truth[keep],
            self.weights[keep],
            self.features[keep],
            self.description,
        )


def _split_fractions(meta: dict[str, Any]) -> tuple[float, ...]:
    from hepvld.train import SPLIT

    return tuple(float(f) for f in meta.get("split", SPLIT))


def load_evaluation_data(
    files: Sequence[Path],
    *,
    split: str,
    fractions: Sequence[float],
    max_jets: int,
    tree: str = "Events",
    max_events: int | None = None,
    level: Any = None,
) -> EvaluationData:
    """Read ``files``, select events with parton truth, keep the requested split.

    Parameters
    ----------
    files
        ROOT files with parton-level truth (``GenPart``).
    split
        ``"test"`` (held-out part by event number, as in training) or ``"all"``.
    fractions
        Train / validation / test fractions of the training split.
    max_jets
        Jet slots of the detector features (the brute-force posterior's).
    tree, max_events
        Input tree; read at most ``max_events`` entries.
    level
        The parton level whose truth is compared (its ``tops`` definition): the models'
        (``UnfoldingModel.level``); default :data:`hepvld.targets.PARTON`.
    """
    import awkward as ak

    from hepvld.data import split_labels
    from hepvld.evaluation import flatten_detector
    from hepvld.features import detector_tensors, select
    from hepvld.io import open_events
    from hepvld.targets import PARTON

    truth_level = PARTON if level is None else level
    events = open_events([str(f) for f in files], tree=tree, entry_stop=max_events)
    mask, cutflow = select(events, require_truth=True)
    log.info(
        "evaluation files: %d of %d events pass the selection (with truth)\n%s",
        int(mask.sum()),
        len(mask),
        cutflow,
    )
    events = events[np.asarray(mask, dtype=bool)]
    description = f"all {len(events)} selected events of {', '.join(str(f) for f in files)}"
    if split == "test":
        if len(fractions) <= _TEST:
            raise ValueError(
                f"the checkpoint's split {tuple(fractions)} has no test part; use --split all"
            )
        labels = split_labels(ak.to_numpy(events.event).astype(np.uint64), fractions)
        events = events[labels == _TEST]
        description = (
            f"held-out test split ({fractions[_TEST]:.0%} by event number) of "
            f"{', '.join(str(f) for f in files)}: {len(events)} events"
        )
    elif split != "all":
        raise ValueError(f"split must be 'test' or 'all', got {split!r}")
    if len(events) == 0:
        raise ValueError(f"no evaluation events: {description}")
    det = detector_tensors(events, max_jets)
    return EvaluationData(
        events=events,
        truth=np.asarray(truth_level.flat(truth_level.build(events).values), dtype=np.float64),
        weights=np.asarray(ak.to_numpy(events.genWeight), dtype=np.float64),
        features=flatten_detector(det.objects, det.mask, det.globals),
        description=description,
    )


def load_training_truth(
    meta: dict[str, Any],
    *,
    max_jets: int,
    tree: str = "Events",
    max_events: int | None = None,
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Truth and flattened detector features of the checkpoint's training events.

    Returns ``(truth (B_train, 55), features (B_train, K), description)``, or ``None``
    (logged) when ``meta["files"]`` is missing or unreadable.
    """
    from hepvld.data import load_tensors, split_by_event
    from hepvld.evaluation import flatten_detector
    from hepvld.targets import level_from_meta

    files = [str(f) for f in meta.get("files", [])]
    missing = [f for f in files if not Path(f).is_file()]
    if not files or missing:
        log.warning(
            "training files of the checkpoint %s; no training truth",
            f"not found: {missing}" if missing else "not recorded",
        )
        return None
    try:
        tensors = load_tensors(
            files,
            max_jets=max_jets,
            require_truth=True,
            entry_stop=max_events,
            tree=tree,
            level=level_from_meta(meta),
        )
    except Exception as err:
        log.warning("cannot read the training files %s (%s); no training truth", files, err)
        return None
    train = split_by_event(tensors, _split_fractions(meta))[_TRAIN]
    if len(train) == 0:
        log.warning("the training split of %s is empty; no training truth", files)
        return None
    return (
        np.asarray(train.targets, dtype=np.float64).reshape(len(train), -1),
        flatten_detector(train.objects, train.mask, train.globals),
        f"train split of {', '.join(files)}: {len(train)} events",
    )


def unfold_draws(
    data: EvaluationData,
    model: Any,
    *,
    n_samples: int,
    sampler: str,
    steps: int,
    batch_size: int,
    seed: int,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior draws of every evaluation event with :func:`hepvld.unfold`.

    Returns
    -------
    draws : ndarray, shape (B, S, 55)
        Physical units; rows of events the model rejects are NaN.
    ok : ndarray of bool, shape (B,)
        Events the model unfolded (passing its selection).
    """
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
    ok = ~ak.to_numpy(ak.is_none(out, axis=0))
    draws = np.full((len(data), n_samples, data.truth.shape[1]), np.nan)
    if ok.any():
        draws[ok] = ak.to_numpy(ak.drop_none(out, axis=0).raw)
    return draws, ok


def main(argv: Sequence[str] | None = None) -> int:
    """``hepvld evaluate`` (:func:`hepvld.cli.evaluate.main`), kept for ``python -m hepvld.evaluate``."""
    from hepvld.cli.evaluate import main as cli_main

    return cli_main(argv, prog="python -m hepvld.evaluate")


if __name__ == "__main__":
    sys.exit(main())
