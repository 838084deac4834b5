"""``hepvld distill RUN --steps 4``: a few-step sampler by progressive distillation.

Loads the run's latest checkpoint (EMA weights, as ``hepvld unfold`` does), reads the
run's own training split (the files recorded in the checkpoint, or ``--data``; the same
selection, split by event number and preprocessing as ``hepvld train``), caches the
detector condition and VAE posterior of every training event, and distils the latent
diffusion from ``--teacher-steps`` DDIM steps down to ``--steps``, halving per round
(:func:`hepvld.training.distill.distil`). Each round's student is written at once to
``RUN/distilled/steps-N.safetensors`` + ``.json`` (so ``--steps 1`` from 64 leaves
students of 32, 16, 8, 4, 2 and 1 steps); sample with ``hepvld unfold ... --sampler
distilled --steps N`` or ``SamplerSpec("distilled", N)``.
"""

from __future__ import annotations

import argparse
import datetime
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hepvld.cli._common import CLIError, Parser, add_debug_arguments, configure_logging, reading
from hepvld.cli._common import run as run_cli

__all__ = ["build_parser", "main"]

log = logging.getLogger("hepvld.distill")


def build_parser(prog: str = "hepvld-distill") -> argparse.ArgumentParser:
    """The argument parser of ``hepvld distill``."""
    from hepvld.diffusion.distillation import WEIGHTINGS
    from hepvld.training.distill import DistillConfig

    d = DistillConfig()
    p = Parser(
        prog=prog,
        description="Distil a trained diffusion model's sampler into a few-step student "
        "(progressive distillation, Salimans & Ho 2022), stored in RUN/distilled/.",
    )
    p.add_argument("run_dir", type=Path, help="run directory of hepvld train (or a checkpoint)")
    p.add_argument("--steps", type=int, default=d.steps, help="student steps of the last round")
    p.add_argument(
        "--teacher-steps",
        type=int,
        default=d.teacher_steps,
        help="DDIM steps of the teacher; --steps times a power of 2 (one round per halving)",
    )
    p.add_argument(
        "--steps-per-round", type=int, default=d.steps_per_round, help="optimiser steps per round"
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="rows per step")
    p.add_argument(
        "--lr", type=float, default=d.lr, help="Adam learning rate (to 0 within each round)"
    )
    p.add_argument(
        "--weighting", choices=WEIGHTINGS, default=d.weighting, help="loss weighting (paper's)"
    )
    p.add_argument(
        "--spacing", choices=("uniform", "logsnr"), default=d.spacing, help="teacher time grid"
    )
    p.add_argument(
        "--max-time",
        type=float,
        default=None,
        help="wall-clock seconds for all rounds (each gets its share of the time left)",
    )
    p.add_argument(
        "--exact-init",
        action="store_true",
        help="start from a student that equals the teacher exactly (output read as alpha * v; "
        "better at many steps, worse at 1-4, see DistillConfig.exact_init)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of every random number")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=None,
        help="training files (default: those recorded in the checkpoint); their training "
        "split is used",
    )
    p.add_argument("--tree", default="Events", help="input tree name")
    p.add_argument("--max-events", type=int, default=None, help="read at most this many entries")
    p.add_argument("--log-every", type=int, default=d.log_every, help="steps per logged loss")
    add_debug_arguments(p)
    return p


def _run(args: argparse.Namespace) -> int:
    import torch

    import hepvld
    from hepvld.data import SPLIT, prepare_data
    from hepvld.models.rebuild import load_network, run_directory
    from hepvld.models.student import distilled_dir, save_student, state_digest
    from hepvld.targets import level_from_meta
    from hepvld.training.checkpoint import find_checkpoint
    from hepvld.training.distill import (
        DistillConfig,
        RoundLog,
        cache_diffusion_data,
        distil,
        round_schedule,
    )

    configure_logging(args)
    try:
        config = DistillConfig(
            steps=args.steps,
            teacher_steps=args.teacher_steps,
            steps_per_round=args.steps_per_round,
            batch_size=args.batch_size,
            lr=args.lr,
            weighting=args.weighting,
            spacing=args.spacing,
            max_time=args.max_time,
            seed=args.seed,
            log_every=args.log_every,
            exact_init=args.exact_init,
        )
    except ValueError as err:
        raise CLIError(str(err)) from None
    if args.threads is not None:
        if args.threads < 1:
            raise CLIError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    with reading(f"checkpoint {args.run_dir}"):
        ckpt_dir = find_checkpoint(args.run_dir)
        net, meta = load_network(ckpt_dir, device=args.device)
    run_dir = run_directory(ckpt_dir)
    files = [str(f) for f in args.data] if args.data else [str(f) for f in meta.get("files", [])]
    if not files:
        raise CLIError(f"{ckpt_dir}: the checkpoint records no training files; pass --data")
    try:
        train, _, _ = prepare_data(
            files,
            max_jets=int(meta.get("max_jets", 20)),
            tree=args.tree,
            entry_stop=args.max_events,
            preprocessing=meta,
            level=level_from_meta(meta),
            split=tuple(meta.get("split", SPLIT)),
        )
        data = cache_diffusion_data(net, train, device=args.device)
    except ValueError as err:
        raise CLIError(str(err)) from None
    digest = state_digest(net)
    log.info(
        "distilling %s (%s, step %s) on %d training events: %d -> %d steps, %d rounds",
        meta.get("model"),
        ckpt_dir,
        meta.get("step"),
        len(data),
        config.teacher_steps,
        config.steps,
        len(round_schedule(config.teacher_steps, config.steps)),
    )
    out = distilled_dir(run_dir)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    def save(steps: int, student: Any, grid: list[float], rounds: list[RoundLog]) -> None:
        path = save_student(
            out,
            steps,
            student,
            {
                "kind": "progressive-distillation",
                "parameterisation": "v",
                "exact_init": config.exact_init,
                "sampler": "ddim",
                "spacing": config.spacing,
                "grid": grid,
                "teacher": {
                    "model": meta.get("model"),
                    "checkpoint": str(ckpt_dir.relative_to(run_dir))
                    if ckpt_dir.is_relative_to(run_dir)
                    else str(ckpt_dir),
                    "step": meta.get("step"),
                    "weights": "ema",
                    "state_sha256": digest,
                },
                "teacher_steps": config.teacher_steps,
                "rounds": [r.to_dict() for r in rounds],
                "config": {
                    k: getattr(config, k)
                    for k in ("steps_per_round", "batch_size", "lr", "weighting", "seed")
                },
                "max_time": config.max_time,
                "training_events": len(data),
                "files": files,
                "hepvld_version": hepvld.__version__,
                "created": created,
            },
        )
        log.info("wrote %s", path)

    result = distil(net, data, config, on_round=save)
    print(f"distilled students in {out}: " + ", ".join(f"{k} steps" for k in result.students))
    print("| round | teacher → student steps | optimiser steps | loss first → last | wall [s] |")
    print("|---:|---|---:|---|---:|")
    for i, r in enumerate(result.rounds, 1):
        print(
            f"| {i} | {r.teacher_steps} → {r.student_steps} | {r.optimiser_steps} | "
            f"{r.loss_first:.4g} → {r.loss_last:.4g} | {r.wall_s:.1f} |"
        )
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "hepvld-distill") -> int:
    """Run ``hepvld distill``; returns the exit status."""
    return run_cli(build_parser(prog), _run, argv)
