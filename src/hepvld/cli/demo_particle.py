"""``hepvld demo --level particle``: the whole particle-level chain, small.

1. generates semi-leptonic tt̄ events (as the parton-level demo, :mod:`hepvld.cli.demo`);
2. trains VL-VLD (``hepvld train --model vl-vld``; the level is the family's, recorded in
   the checkpoint) for ``--train-steps`` optimiser steps;
3. unfolds the held-out test split with ``hepvld.unfold`` (variable-length draws) and
   writes them with ``hepvld unfold``'s writer (jagged ``Object`` collection, uproot/coffea);
4. evaluates (:func:`hepvld.evaluation.particle_report.write_particle_report`) and prints
   the jet multiplicity and the pseudo-top mass peaks of the truth and the draws.

Every step is skipped when its output exists (``--fresh`` redoes everything).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time

import numpy as np

from hepvld.cli._common import CLIError

__all__ = ["run_particle_demo"]

log = logging.getLogger("hepvld.demo")


def _band(x: np.ndarray) -> str:
    x = x[np.isfinite(x)]
    if not len(x):
        return f"{'n/a':>22s}"
    lo, med, hi = np.percentile(x, [16, 50, 84])
    return f"{med:7.1f} [{lo:6.1f}, {hi:6.1f}]"


def run_particle_demo(args: argparse.Namespace) -> int:
    """Run the particle-level demo with the parsed arguments of ``hepvld demo``."""
    import hepvld
    from hepvld.cli.demo import _train_argv, _trained_steps, _training_line
    from hepvld.cli.train import main as train_main
    from hepvld.evaluation.particle_data import load_particle_events, unfold_particle_draws
    from hepvld.evaluation.particle_report import write_particle_report
    from hepvld.targets.particle_output import feature_labels, feature_table
    from hepvld.train import SPLIT

    out = args.output
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    sample, run_dir = out / "ttbar.root", out / "run-particle"
    t0 = time.perf_counter()
    if not sample.exists():
        from hepvld.generate import generate

        log.info(
            "generated %s",
            generate(
                sample,
                args.events,
                seed=args.seed,
                workers=args.workers,
                mpi=not args.fast_physics,
                progress=True,
            ),
        )
    t_gen = time.perf_counter() - t0

    done = _trained_steps(run_dir)
    reused = done is not None and done >= args.train_steps
    if not reused:
        model_args = argparse.Namespace(**{**vars(args), "model": args.model or "vl-vld"})
        argv = _train_argv(model_args, sample, run_dir)
        warmup = max(1, min(100, args.train_steps // 10))
        argv += ["--train.warmup-steps", str(warmup)]
        argv += ["--train.val-every", str(max(1, min(200, args.train_steps)))]
        argv += ["--train.checkpoint-every", str(max(1, min(200, args.train_steps)))]
        if done is not None:
            argv.append("--resume")
        rc = train_main(argv)
        if rc != 0:
            raise CLIError(f"training failed (exit status {rc}); see the messages above")
    t_train = time.perf_counter() - t0 - t_gen

    model = hepvld.load(run_dir)
    level = model.level
    if level.fixed_multiplicity:
        raise CLIError(f"--model {model.name} unfolds to the {level.name} level, not particle")
    step = int(model.meta.get("step", 0))
    training = _training_line(step, args.train_steps, args.train_time, reused)
    test = load_particle_events([sample], level, split="test", fractions=SPLIT)
    train = load_particle_events([sample], level, split="train", fractions=SPLIT)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        values, mask, ok = unfold_particle_draws(
            test,
            model,
            n_samples=args.n_samples,
            sampler="dpmpp2m",
            steps=args.steps,
            batch_size=256,
            seed=args.seed,
        )
        from hepvld.io.unfolded import unfold_files

        n_written, _ = unfold_files(
            [sample],
            out / "unfolded-particle.root",
            model=model,
            max_events=min(args.events, 500),
            n_samples=min(args.n_samples, 8),
            steps=args.steps,
            seed=args.seed,
        )
    finally:
        torch.set_num_threads(threads)
    test = test.subset(ok)
    values, mask = values[ok], mask[ok]
    t_unfold = time.perf_counter() - t0 - t_gen - t_train

    report = write_particle_report(
        out / "report-particle",
        level,
        (test.values, test.mask),
        {model.name: (values, mask)},
        weights=test.weights,
        train_truth=(train.values, train.mask),
        n_boot=50,
        plot_formats=("png",),
        seed=args.seed,
        title=f"hepvld demo: {model.name} on generated tt̄ (particle level), trained {training}",
    )
    labels = feature_labels(level)
    tt = feature_table(level, test.values, test.mask)
    dd = feature_table(level, values, mask)
    nj = labels.index("n_jets")
    lines = [
        "",
        "hepvld particle-level demo summary",
        "==================================",
        f"sample      {sample}: {len(train)} train / {len(test)} test events in both phase spaces",
        f"model       {run_dir}: {model.name}, {training}",
        f"unfolded    {len(test)} test events x {args.n_samples} draws (dpmpp2m, {args.steps} "
        f"steps); {n_written} events written to {out / 'unfolded-particle.root'}",
        "",
        "jet multiplicity <4/4/5/6/7+ (truth | draws):",
        "  "
        + " / ".join(f"{100 * np.mean(c):.0f}%" for c in _jet_bins(tt[:, nj]))
        + "  |  "
        + " / ".join(f"{100 * np.mean(c):.0f}%" for c in _jet_bins(dd[:, :, nj])),
        "",
        "pseudo-top masses [GeV], median [16%, 84%]",
        f"  {'':8s} {'truth':>22s} {'unfolded':>22s}",
    ]
    for name in ("W_had", "W_lep", "t_had", "t_lep"):
        j = labels.index(f"{name}/mass")
        lines.append(f"  {name:8s} {_band(tt[:, j]):>22s} {_band(dd[:, :, j].ravel()):>22s}")
    lines += [
        "",
        *report.summary,
        "",
        f"report      {report.html}",
        f"time        generate {t_gen:.0f} s, train {t_train:.0f} s, unfold {t_unfold:.0f} s, "
        f"total {time.perf_counter() - t0:.0f} s",
    ]
    print("\n".join(lines))
    return 0


def _jet_bins(n: np.ndarray) -> tuple[np.ndarray, ...]:
    return (n < 4, n == 4, n == 5, n == 6, n >= 7)
