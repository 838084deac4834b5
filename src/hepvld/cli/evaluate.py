"""``hepvld evaluate --checkpoint RUN --data test.root -o report/``: evaluate models.

The command line of :mod:`hepvld.evaluate` (which events, which training truth, and what
the report holds are described there and in ``docs/evaluation.md``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepvld.cli._common import CLIError, Parser, add_debug_arguments, configure_logging, reading
from hepvld.cli._common import run as run_cli

__all__ = ["build_parser", "main"]

log = logging.getLogger("hepvld.evaluate")


def build_parser(prog: str = "hepvld-evaluate") -> argparse.ArgumentParser:
    """The argument parser of ``hepvld evaluate``."""
    from hepvld.diffusion.samplers import SAMPLER_NAMES

    p = Parser(
        prog=prog,
        description="Evaluate trained hepvld models on events with parton-level truth: "
        "distances to the truth (paper's Table 1) beside the truth-vs-truth floor, per-event "
        "scores beside a no-information reference, calibration, physics consistency, figures "
        "and a one-page HTML summary (docs/evaluation.md).",
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
        choices=sorted(SAMPLER_NAMES),
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
    add_debug_arguments(p)
    return p


def _model_specs(args: argparse.Namespace) -> list[tuple[str | None, Path]]:
    specs: list[tuple[str | None, Path]] = [(None, c) for c in args.checkpoint]
    for item in args.models:
        name, sep, run = item.partition("=")
        if not sep or not name or not run:
            raise CLIError(f"--models expects NAME=RUN, got {item!r}")
        specs.append((name, Path(run)))
    if not specs:
        raise CLIError("give at least one --checkpoint RUN or --models NAME=RUN")
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


def _run(args: argparse.Namespace) -> int:
    from hepvld.evaluate import (
        _split_fractions,
        load_evaluation_data,
        load_training_truth,
        unfold_draws,
    )

    configure_logging(args)
    if args.n_samples < 2:
        raise CLIError("--n-samples must be >= 2 (per-event scores and calibration need two draws)")
    specs = _model_specs(args)
    t_start = time.perf_counter()

    from hepvld.api import load
    from hepvld.evaluation import write_report

    models: dict[str, Any] = {}
    for name, run in specs:
        with reading(f"checkpoint {run}"):
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

    levels = {name: um.level for name, um in models.items()}
    if len({(lv.name, json.dumps(lv.options(), sort_keys=True)) for lv in levels.values()}) > 1:
        raise CLIError(
            "the models unfold to different target definitions "
            f"({', '.join(f'{n}: {lv.name} {lv.options()}' for n, lv in levels.items())}); "
            "evaluate them separately"
        )
    if not first.level.fixed_multiplicity:
        return _run_particle(args, models, fractions, t_start)
    data = load_evaluation_data(
        args.data,
        split=args.split,
        fractions=fractions,
        max_jets=first.max_jets,
        tree=args.tree,
        max_events=args.max_events,
        level=first.level,
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


def _run_particle(
    args: argparse.Namespace,
    models: dict[str, Any],
    fractions: tuple[float, ...],
    t_start: float,
) -> int:
    """``hepvld evaluate`` of variable-length (particle-level) models
    (:mod:`hepvld.evaluation.particle_report`)."""
    from hepvld.evaluation.particle_data import load_particle_events, unfold_particle_draws
    from hepvld.evaluation.particle_report import write_particle_report

    first = next(iter(models.values()))
    level = first.level
    for name, um in models.items():
        if um.level != level:
            raise CLIError(
                f"{name} unfolds to {um.level.name} {um.level.options()}, the first model to "
                f"{level.name} {level.options()}: evaluate models of one level together"
            )
    data = load_particle_events(
        args.data,
        level,
        split=args.split,
        fractions=fractions,
        tree=args.tree,
        max_events=args.max_events,
    )
    if len(data) == 0:
        raise CLIError(f"no evaluation events: {data.description}")
    log.info("evaluating on %s", data.description)
    draws: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    keep = np.ones(len(data), dtype=bool)
    for name, um in models.items():
        t0 = time.perf_counter()
        values, mask, ok = unfold_particle_draws(
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
            "%s: %d events x %d draws in %.1f s",
            name,
            int(ok.sum()),
            args.n_samples,
            time.perf_counter() - t0,
        )
        draws[name] = (values, mask)
        keep &= ok
    if not keep.all():
        log.warning("%d events rejected by a model's selection are left out", int((~keep).sum()))
        data = data.subset(keep)
        draws = {k: (v[keep], m[keep]) for k, (v, m) in draws.items()}
    train = None
    files = [str(f) for f in first.meta.get("files", [])]
    if args.no_train_truth:
        log.info("--no-train-truth: floor from test-truth halves, reference from the test truth")
    elif files and all(Path(f).is_file() for f in files):
        part = load_particle_events(
            files,
            level,
            split="train",
            fractions=fractions,
            tree=args.tree,
            max_events=args.max_train_events,
        )
        train = (part.values, part.mask)
        log.info("training truth: %s", part.description)
    else:
        log.warning("training files of the checkpoint not found (%s): no training truth", files)
    title = (
        args.title or f"hepvld particle-level evaluation: {', '.join(models)} on {len(data)} events"
    )
    report = write_particle_report(
        args.output,
        level,
        (data.values, data.mask),
        draws,
        weights=data.weights,
        train_truth=train,
        n_boot=args.n_boot,
        plots=not args.no_plots,
        plot_formats=tuple(args.plot_formats),
        seed=args.seed,
        title=title,
    )
    print(
        f"evaluated {', '.join(models)} ({level.name} level) on {data.description} "
        f"({args.n_samples} draws, {args.sampler} {args.steps} steps) in "
        f"{time.perf_counter() - t_start:.0f} s"
    )
    for line in report.summary:
        print(f"  {line}")
    print(f"summary: {report.html}")
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "hepvld-evaluate") -> int:
    """Run ``hepvld evaluate``; returns the exit status."""
    return run_cli(build_parser(prog), _run, argv)
