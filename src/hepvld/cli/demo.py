"""``hepvld demo`` (or ``python -m hepvld.demo``): the README's end-to-end demo on built-in simulated data.

1. generates semi-leptonic tt̄ events with Pythia 8 + fastjet + the parametric CMS-like
   detector (``hepvld.generate``), all physics on;
2. trains a ``small`` C-VLD (the train CLI's default model, decay-chain targets) on the
   training split for a fixed number of optimiser steps (``hepvld train``; the budget
   is in steps, never in wall time, so the result does not depend on how busy the
   machine is);
3. unfolds the held-out test split with ``hepvld.unfold`` (S posterior draws per event);
4. prints a short summary (sample, training, W and top mass peaks, Table-1 distances
   beside the truth-vs-truth floor) and writes an evaluation report (HTML, tables, plots).

Every step is skipped when its output already exists (``--fresh`` redoes everything).
The printed numbers depend only on the seed, the steps, the torch version, the CPU
threads (``--threads``, fixed by default) and the CPU's instruction set.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hepvld.cli._common import CLIError, Parser, add_debug_arguments, configure_logging
from hepvld.cli._common import run as run_cli

__all__ = ["build_parser", "main"]

log = logging.getLogger("hepvld.demo")


def build_parser(prog: str = "hepvld-demo") -> argparse.ArgumentParser:
    """The argument parser of ``hepvld demo``."""
    p = Parser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--output", type=Path, default=Path("demo-output"), help="working directory")
    p.add_argument("--events", type=int, default=4000, help="selected events to generate")
    p.add_argument("--workers", type=int, default=2, help="generator processes")
    p.add_argument("--fast-physics", action="store_true", help="generate without MPI (4x faster)")
    p.add_argument(
        "--train-steps",
        type=int,
        default=1500,
        help="optimiser steps (the cosine learning-rate decay spans them)",
    )
    p.add_argument(
        "--train-time",
        type=float,
        default=None,
        help="optional wall-clock safety net on training in seconds (off by default); when it "
        "stops training the summary says so, and the numbers are not the README's",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads of training and sampling (part of what the result depends on)",
    )
    p.add_argument("--n-samples", type=int, default=32, help="posterior draws per test event")
    p.add_argument("--steps", type=int, default=20, help="DPM-Solver++ steps")
    p.add_argument("--seed", type=int, default=1, help="seed of generation, training and sampling")
    p.add_argument("--fresh", action="store_true", help="delete --output first")
    p.add_argument(
        "--level",
        choices=("parton", "particle"),
        default="parton",
        help="what is unfolded: the 11 partons with C-VLD, or the variable-length particle "
        "level with VL-VLD (--model)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="model family (default: hepvld train's c-vld at parton level, vl-vld at "
        "particle level)",
    )
    p.add_argument(
        "--preset", default="small", help="model size preset of hepvld train (default small)"
    )
    add_debug_arguments(p)
    return p


def _trained_steps(run_dir: Path) -> int | None:
    """Optimiser steps of the latest checkpoint in ``run_dir`` (``None``: no checkpoint)."""
    pointer = run_dir / "checkpoints" / "latest.json"
    if not pointer.exists():
        return None
    from hepvld.training.checkpoint import load_checkpoint

    return int(load_checkpoint(run_dir).meta["step"])


def _training_line(step: int, budget: int, time_cap: float | None, reused: bool) -> str:
    """How many steps ran and why training stopped, for the summary and the report."""
    where = " (checkpoint reused from an earlier run)" if reused else ""
    if step >= budget:
        return f"{step} of {budget} optimiser steps: completed the step budget{where}"
    why = (
        f"stopped early by the --train-time={time_cap:g} s safety net"
        if time_cap is not None
        else "stopped before the step budget"
    )
    return f"{step} of {budget} optimiser steps: {why}{where}; NOT the README's result"


def _train_argv(args: argparse.Namespace, sample: Path, run_dir: Path) -> list[str]:
    """Arguments of ``hepvld train`` for the demo's step budget."""
    return [
        str(sample),
        "--run-dir",
        str(run_dir),
        "--preset",
        args.preset,
        "--train.max-steps",
        str(args.train_steps),
        "--train.max-time",
        "none" if args.train_time is None else str(args.train_time),
        "--train.batch-size",
        "256",
        "--train.warmup-steps",
        "100",
        "--train.val-every",
        "200",
        "--train.checkpoint-every",
        "200",
        "--train.lr",
        "1e-3",
        "--train.seed",
        str(args.seed),
        "--train.device",
        "cpu",
        "--train.num-threads",
        str(args.threads),
        *(["--model", args.model] if args.model else []),
    ]


def _band(x: np.ndarray) -> str:
    lo, med, hi = np.nanpercentile(x, [16, 50, 84])
    return f"{med:7.1f} [{lo:6.1f}, {hi:6.1f}]"


def _run(args: argparse.Namespace) -> int:
    configure_logging(args)
    if args.level == "particle":
        from hepvld.cli.demo_particle import run_particle_demo

        return run_particle_demo(args)
    import awkward as ak

    import hepvld
    from hepvld.cli.train import main as train_main
    from hepvld.data import split_labels
    from hepvld.evaluation import write_report
    from hepvld.evaluation.consistency import composite_masses, regressed_masses
    from hepvld.features import detector_tensors, select
    from hepvld.io import open_events
    from hepvld.physics import parton_targets
    from hepvld.train import SPLIT

    out = args.output
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    sample, run_dir = out / "ttbar.root", out / "run"
    t0 = time.perf_counter()

    # 1. data
    if not sample.exists():
        from hepvld.generate import generate

        summary = generate(
            sample,
            args.events,
            seed=args.seed,
            workers=args.workers,
            mpi=not args.fast_physics,
            progress=True,
        )
        log.info("generated %s", summary)
    t_gen = time.perf_counter() - t0

    # 2. training: a budget in optimiser steps (a wall-time cap is only a safety net)
    done = _trained_steps(run_dir)
    reused = done is not None and done >= args.train_steps
    if not reused:
        argv = _train_argv(args, sample, run_dir)
        if done is not None:  # an earlier run stopped before the budget: continue it
            log.info("continuing the training in %s from step %d", run_dir, done)
            argv.append("--resume")
        rc = train_main(argv)
        if rc != 0:
            raise CLIError(f"training failed (exit status {rc}); see the messages above")
    t_train = time.perf_counter() - t0 - t_gen

    # 3. unfold the held-out test split
    events = open_events(sample)
    mask, _cutflow = select(events, require_truth=True)
    events = events[mask]
    labels = split_labels(ak.to_numpy(events["event"]), SPLIT)
    train_ev, test_ev = events[labels == 0], events[labels == 2]
    model = hepvld.load(run_dir)
    step = int(model.meta.get("step", 0))
    training = _training_line(step, args.train_steps, args.train_time, reused)
    if step < args.train_steps:
        log.warning("training: %s", training)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # this process is the demo's: restored below
    try:
        unfolded = hepvld.unfold(
            test_ev,
            model=model,
            n_samples=args.n_samples,
            sampler="dpmpp2m",
            steps=args.steps,
            seed=args.seed,
            raw=True,
        )
    finally:
        torch.set_num_threads(threads)
    draws = ak.to_numpy(unfolded.raw).astype(np.float64)
    truth = parton_targets(test_ev).astype(np.float64)
    train_truth = parton_targets(train_ev).astype(np.float64)
    t_unfold = time.perf_counter() - t0 - t_gen - t_train

    # 4. evaluation and summary
    report = write_report(
        out / "report",
        truth,
        {model.name: draws},
        train_truth=train_truth,
        n_boot=50,
        plot_formats=("png",),
        seed=args.seed,
        title=f"hepvld demo: small {model.name} on generated tt̄, trained {training}",
    )
    jets = detector_tensors(events).mask.sum(axis=1) - 1  # object 0 is the lepton
    mt, md, mr = composite_masses(truth), composite_masses(draws), regressed_masses(draws)
    lines = [
        "",
        "hepvld demo summary",
        "===================",
        f"sample      {sample}: {len(events)} selected events "
        f"({len(train_ev)} train / {len(test_ev)} test)",
        "            jet multiplicity 4/5/6/7+: "
        + " / ".join(
            f"{100 * np.mean(c):.0f}%" for c in (jets == 4, jets == 5, jets == 6, jets >= 7)
        ),
        f"model       {run_dir}: {model.name}, {training}",
        f"unfolded    {len(test_ev)} test events x {args.n_samples} draws "
        f"(dpmpp2m, {args.steps} steps)",
        "",
        "mass peaks [GeV], median [16%, 84%] over events x draws",
        f"  {'':8s} {'truth':>24s} {'unfolded':>24s} {'summed daughters':>24s}",
    ]
    for name in ("W_had", "W_lep", "t_had", "t_lep"):
        lines.append(
            f"  {name:8s} {_band(mt[name]):>24s} {_band(mr[name]):>24s} {_band(md[name]):>24s}"
        )
    lines.append(
        "  (unfolded: the regressed mass that hepvld.unfold returns; summed daughters: the"
        " mass of the sum of the unfolded leaves, a consistency check)"
    )
    lines += [
        "",
        *report.summary,
        "",
        f"report      {report.html}",
        f"time        generate {t_gen:.0f} s, train {t_train:.0f} s, "
        f"unfold {t_unfold:.0f} s, total {time.perf_counter() - t0:.0f} s",
    ]
    print("\n".join(lines))
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "hepvld-demo") -> int:
    """Run ``hepvld demo``; returns the exit status."""
    return run_cli(build_parser(prog), _run, argv)
