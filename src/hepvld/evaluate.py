"""``python -m hepvld.evaluate --checkpoint RUN --data test.root -o report/``: evaluate models.

Loads every checkpoint, reads the evaluation events, unfolds them with
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

import argparse
import logging
import math
import sys
import time
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
    """
    import awkward as ak

    from hepvld.data import split_labels
    from hepvld.evaluation import flatten_detector
    from hepvld.features import detector_tensors, select
    from hepvld.io import open_events
    from hepvld.targets import PARTON

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
            raise SystemExit(
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
        raise SystemExit(f"no evaluation events: {description}")
    det = detector_tensors(events, max_jets)
    return EvaluationData(
        events=events,
        truth=np.asarray(PARTON.flat(PARTON.build(events).values), dtype=np.float64),
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
            files, max_jets=max_jets, require_truth=True, entry_stop=max_events, tree=tree
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hepvld.evaluate",
        description="Evaluate trained hepvld models on events with parton-level truth: "
        "distances to the truth (paper's Table 1) beside the truth-vs-truth floor, per-event "
        "scores beside a no-information reference, calibration, physics consistency, figures "
        "and a one-page HTML summary (docs/evaluation.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        "-c",
        action="append",
        type=Path,
        default=[],
        metavar="RUN",
        help="run directory or checkpoint; repeat for several models (named by their "
        "registered model, e.g. VLD, UC-VLD)",
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=[],
        metavar="NAME=RUN",
        help="models with an explicit report name, e.g. --models vld=runs/vld cvae=runs/cvae",
    )
    p.add_argument(
        "--data",
        "-d",
        nargs="+",
        required=True,
        type=Path,
        metavar="FILE",
        help="ROOT file(s) with parton-level truth to evaluate on",
    )
    p.add_argument("--output", "-o", required=True, type=Path, help="report directory (created)")
    p.add_argument(
        "--split",
        choices=("test", "all"),
        default="test",
        help="'test': the held-out test split of --data by event number, as in "
        "training; 'all': every selected event (a separate file)",
    )
    p.add_argument(
        "--n-samples", "-S", type=int, default=100, help="posterior draws per event (>= 2)"
    )
    p.add_argument(
        "--sampler",
        default="dpmpp2m",
        choices=("ddpm", "ddim", "pndm", "dpmpp2m"),
        help="diffusion sampler",
    )
    p.add_argument("--steps", type=int, default=50, help="sampler steps")
    p.add_argument(
        "--max-events",
        type=int,
        default=None,
        help="read at most this many entries of --data (before selection and split)",
    )
    p.add_argument(
        "--max-train-events",
        type=int,
        default=None,
        help="read at most this many entries of the training files (reference, floor)",
    )
    p.add_argument(
        "--no-train-truth",
        action="store_true",
        help="do not read the training files: floor from test-truth halves, reference "
        "from the test truth marginal, no brute-force posterior",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the draws, bootstrap and reference")
    p.add_argument("--batch-size", type=int, default=1024, help="events per network call")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--tree", default="Events", help="input tree name")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap replicates of every error")
    p.add_argument(
        "--global-draws",
        choices=("first", "all"),
        default="first",
        help="draws per event in the global distances ('first': one, as the paper)",
    )
    p.add_argument(
        "--posterior-events",
        type=int,
        nargs="*",
        default=[0],
        help="indices of test events drawn as per-event posteriors",
    )
    p.add_argument("--plot-formats", nargs="*", default=["png", "pdf"], help="figure file formats")
    p.add_argument("--no-plots", action="store_true", help="tables and HTML only, no figures")
    p.add_argument("--title", default=None, help="report title")
    p.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    return p


def _model_specs(args: argparse.Namespace) -> list[tuple[str | None, Path]]:
    specs: list[tuple[str | None, Path]] = [(None, c) for c in args.checkpoint]
    for item in args.models:
        name, sep, run = item.partition("=")
        if not sep or not name or not run:
            raise SystemExit(f"--models expects NAME=RUN, got {item!r}")
        specs.append((name, Path(run)))
    if not specs:
        raise SystemExit("give at least one --checkpoint RUN or --models NAME=RUN")
    return specs


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    return out


def _table1_lines(report: Any) -> list[str]:
    """One ``name | value ± error | ...`` line per row of Table 1."""
    from hepvld.evaluation.tables import format_value

    def text(cell: Any) -> str:
        if isinstance(cell, tuple):
            return format_value(*cell)
        return cell if isinstance(cell, str) else format_value(cell)

    return [" | ".join(text(c) for c in row) for row in report.tables["table1"].rows]


def _table1_values(report: Any) -> list[float]:
    """Every Table 1 value (without errors)."""
    return [
        float(c[0] if isinstance(c, tuple) else c)
        for row in report.tables["table1"].rows
        for c in row[1:]
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.n_samples < 2:
        raise SystemExit(
            "--n-samples must be >= 2 (per-event scores and calibration need two draws)"
        )
    specs = _model_specs(args)
    t_start = time.perf_counter()

    from hepvld.api import load
    from hepvld.evaluation import write_report

    models: dict[str, Any] = {}
    for name, run in specs:
        um = load(run, device=args.device)
        models[_unique(name or um.name.upper(), set(models))] = um
        log.info("loaded %s from %s", um.name, run)
    first = next(iter(models.values()))
    fractions = _split_fractions(first.meta)
    for name, um in models.items():
        if _split_fractions(um.meta) != fractions:
            log.warning(
                "%s was trained with split %s, not %s: its training and the test split may overlap",
                name,
                _split_fractions(um.meta),
                fractions,
            )
    data_files = sorted(str(Path(f).resolve()) for f in args.data)
    if args.split == "all":
        for name, um in models.items():
            if data_files == sorted(str(Path(f).resolve()) for f in um.meta.get("files", [])):
                log.warning(
                    "--split all on %s's own training files: the evaluation includes training events",
                    name,
                )

    data = load_evaluation_data(
        args.data,
        split=args.split,
        fractions=fractions,
        max_jets=first.max_jets,
        tree=args.tree,
        max_events=args.max_events,
    )
    log.info("evaluating on %s", data.description)

    draws_by_model: dict[str, np.ndarray] = {}
    keep = np.ones(len(data), dtype=bool)
    for name, um in models.items():
        t0 = time.perf_counter()
        draws, ok = unfold_draws(
            data,
            um,
            n_samples=args.n_samples,
            sampler=args.sampler,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
            device=args.device,
        )
        log.info(
            "%s: %d events x %d draws (%s, %d steps) in %.1f s",
            name,
            int(ok.sum()),
            args.n_samples,
            args.sampler,
            args.steps,
            time.perf_counter() - t0,
        )
        draws_by_model[name] = draws
        keep &= ok
    if not keep.all():
        log.warning("%d events rejected by a model's selection are left out", int((~keep).sum()))
        data = data.subset(keep)
        draws_by_model = {k: v[keep] for k, v in draws_by_model.items()}

    train = None
    if args.no_train_truth:
        log.info(
            "--no-train-truth: floor from test-truth halves, reference from the test truth marginal"
        )
    else:
        train = load_training_truth(
            first.meta, max_jets=first.max_jets, tree=args.tree, max_events=args.max_train_events
        )
        if train is None:
            log.warning(
                "no training truth: the floor uses the test truth split in halves (B/2 events) "
                "and the reference the test truth marginal"
            )
    train_truth, train_features = (train[0], train[1]) if train is not None else (None, None)
    if train is not None:
        log.info("training truth: %s", train[2])

    title = args.title or f"hepvld evaluation: {', '.join(models)} on {len(data)} events"
    report = write_report(
        args.output,
        data.truth,
        draws_by_model,
        weights=data.weights,
        train_truth=train_truth,
        train_features=train_features,
        test_features=data.features if train is not None else None,
        posterior_events=[i for i in args.posterior_events if 0 <= i < len(data)],
        n_boot=args.n_boot,
        global_draws=args.global_draws,
        plot_formats=tuple(args.plot_formats),
        plots=not args.no_plots,
        seed=args.seed,
        title=title,
    )
    print(
        f"evaluated {', '.join(models)} on {data.description} "
        f"({args.n_samples} draws, {args.sampler} {args.steps} steps) in {time.perf_counter() - t_start:.0f} s"
    )
    print(
        f"Table 1 (sum over 55 components; columns {', '.join(report.tables['table1'].columns[1:])}):"
    )
    for line in _table1_lines(report):
        print(f"  {line}")
    print(f"summary: {report.html}")
    if not all(math.isfinite(v) for v in _table1_values(report)):
        log.warning("Table 1 holds non-finite values (a diverged model?)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
