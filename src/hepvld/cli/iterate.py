"""``hepvld iterate --sim train.root --data data.root -c RUN -o DIR``: iterative unfolding.

Unfold the data, reweight the training simulation at truth level toward the unfolded
distribution (a classifier density ratio), fine-tune the model on the reweighted
simulation, repeat (:mod:`hepvld.iterate`). Writes ``DIR/iter_<k>/`` (run directories
usable with ``hepvld unfold``), ``DIR/iterations.json`` (the convergence report) and
``DIR/weights.npz`` (the final prior weights).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from hepvld.cli._common import CLIError, Parser, add_debug_arguments, configure_logging, reading
from hepvld.cli._common import run as run_cli

__all__ = ["build_parser", "main"]

log = logging.getLogger("hepvld.iterate")

_HELP = {
    "iterations": "prior updates (each: unfold, reweight, fine-tune)",
    "n_samples": "posterior draws per event in each unfolding",
    "sampler": "diffusion sampler",
    "steps": "sampler steps",
    "max_data_events": "unfold at most this many data events (selected)",
    "max_reference_events": "simulation events unfolded as the classifier's reference",
    "reference": "unfolded-sim: the model's unfolding of the simulation (its smearing "
    "cancels); truth: the simulation's truth",
    "features": "classifier inputs: raw (the flattened target) or observables (the "
    "monitored ones: t_had/t_lep/W_had mass, t_had/t_lep pT, ttbar mass)",
    "step_size": "exponent on the density ratio (1: the plain iteration; > 1 over-relaxes)",
    "weight_clip": "per-iteration ratio clipped to [1/c, c]",
    "max_weight": "cumulative prior weight clipped to [1/m, m]",
    "classifier_hidden": "hidden width of the reweighting classifier",
    "classifier_epochs": "epochs of the reweighting classifier",
    "classifier_lr": "learning rate of the reweighting classifier",
    "finetune_steps": "optimiser steps of each fine-tuning (0: reweight only)",
    "finetune_lr": "learning rate of each fine-tuning",
    "batch_size": "events per optimiser step",
    "seed": "seed of draws, classifier and fine-tuning",
    "num_threads": "torch CPU threads",
}


def build_parser(prog: str = "hepvld-iterate") -> argparse.ArgumentParser:
    """The argument parser of ``hepvld iterate``."""
    from hepvld.iterate import IterateConfig

    p = Parser(prog=prog, description=(__doc__ or "").split("\n\n")[1].replace("\n", " "))
    p.add_argument("--sim", nargs="+", required=True, type=Path, help="training simulation")
    p.add_argument("--data", nargs="+", required=True, type=Path, help="data to unfold")
    p.add_argument("--checkpoint", "-c", required=True, type=Path, help="starting model")
    p.add_argument("--output", "-o", required=True, type=Path, help="output directory")
    p.add_argument("--tree", default="Events", help="input tree name")
    p.add_argument(
        "--data-weights",
        type=Path,
        help="NPZ with per-event data weights (arrays event, weight; matched by event "
        "number): a reweighted pseudo-data sample, e.g. from analysis/prior_shift.py "
        "--write-top-pt-weights (default: unweighted data)",
    )
    for f in dataclasses.fields(IterateConfig):
        opt = "--" + f.name.replace("_", "-")
        kind = {"float": float, "int": int}.get(str(f.type).split(" ")[0], str)
        if f.name in ("reference", "features"):
            choices = ("unfolded-sim", "truth") if f.name == "reference" else ("raw", "observables")
            p.add_argument(opt, default=f.default, choices=choices, help=_HELP[f.name])
        else:
            p.add_argument(opt, type=kind, default=f.default, help=_HELP[f.name])
    add_debug_arguments(p)
    return p


def _run(args: argparse.Namespace) -> int:
    from hepvld.iterate import IterateConfig, iterate

    configure_logging(args)
    try:
        cfg = IterateConfig(
            **{f.name: getattr(args, f.name) for f in dataclasses.fields(IterateConfig)}
        )
    except ValueError as err:
        raise CLIError(str(err)) from None
    with reading(f"checkpoint {args.checkpoint}"):
        from hepvld.api import load

        load(args.checkpoint)
    if args.data_weights is not None and not args.data_weights.is_file():
        raise CLIError(f"--data-weights {args.data_weights}: no such file")
    records = iterate(  # a bad weights file: ValueError naming it, reported as one message
        args.sim,
        args.data,
        args.checkpoint,
        args.output,
        cfg,
        tree=args.tree,
        data_weights=args.data_weights,
    )
    for r in records:
        obs = ", ".join(f"{k} {v['median']:.3f}" for k, v in r.observables.items())
        log.info("iteration %d (%s): %s", r.iteration, r.checkpoint, obs)
    log.info("report: %s", args.output / "iterations.json")
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "hepvld-iterate") -> int:
    """Run ``hepvld iterate``; returns the exit status."""
    return run_cli(build_parser(prog), _run, argv)
