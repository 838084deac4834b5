"""``hepvld unfold file.root --checkpoint RUN -o out.root``: write posterior draws.

The output is a TTree ``Unfolded`` with one entry per *selected* input event: ``event``
(the input event number) and a NanoAOD-style collection ``Draw`` (counter ``nDraw`` = S)
whose branches ``Draw_<parton>_<pt|eta|phi|mass>`` hold the S posterior draws of each
parton (``b_lep`` ... ``ttbar``); see :func:`hepvld.io.unfolded.write_unfolded`. A
particle-level model (VL-VLD) writes per draw ``Draw_met``, ``Draw_nu_*``,
``Draw_nObject`` and every object of every draw in the collection ``Object_*``
(docs/particle-usage.md). Events failing the selection are counted in the log.

The output is written under a temporary name and renamed when complete; after each chunk
a journal ``OUTPUT.journal.json`` records the progress, and ``--resume`` continues a
killed run from its last complete chunk (:func:`hepvld.io.unfolded.unfold_files`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from hepvld.cli._common import CLIError, Parser, add_debug_arguments, configure_logging, reading
from hepvld.cli._common import run as run_cli

__all__ = ["build_parser", "main"]

log = logging.getLogger("hepvld.unfold")


def build_parser(prog: str = "hepvld-unfold") -> argparse.ArgumentParser:
    """The argument parser of ``hepvld unfold``."""
    from hepvld.diffusion.samplers import SAMPLER_NAMES
    from hepvld.io.unfolded import COMPRESSION

    p = Parser(
        prog=prog,
        description="Unfold detector-level events with a trained hepvld model and write "
        "posterior draws of the model's target level (the 11 partons, or the particle-level "
        "objects) to a ROOT file.",
    )
    p.add_argument("files", nargs="+", type=Path, help="input ROOT files (NanoAOD-like)")
    p.add_argument(
        "--checkpoint", "-c", required=True, type=Path, help="run directory or checkpoint"
    )
    p.add_argument(
        "--output", "-o", required=True, type=Path, help="output file (ROOT or HDF5, see --format)"
    )
    p.add_argument(
        "--format",
        default="root",
        choices=("root", "hdf5"),
        help="root: the Unfolded tree; hdf5: the unbinned result format (hepvld.io.unbinned: "
        "draws, bootstrap replicas, truth when present, metadata)",
    )
    p.add_argument(
        "--replicas", type=int, default=100, help="hdf5: Poisson bootstrap replicas per event"
    )
    p.add_argument("--bootstrap-seed", type=int, default=0, help="hdf5: seed of the replicas")
    p.add_argument("--tree", default="Events", help="input tree name")
    p.add_argument("--n-samples", "-S", type=int, default=100, help="posterior draws per event")
    p.add_argument(
        "--sampler", default="dpmpp2m", choices=sorted(SAMPLER_NAMES), help="diffusion sampler"
    )
    p.add_argument("--steps", type=int, default=50, help="sampler steps")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="events per network call (default: hepvld.runtime.auto_batch_size)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the draws")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--compression", default="zstd", choices=COMPRESSION, help="output codec")
    p.add_argument(
        "--max-events", type=int, default=None, help="read at most this many events (all)"
    )
    p.add_argument(
        "--chunk-events", type=int, default=20_000, help="events read and unfolded at once"
    )
    p.add_argument(
        "--on-nonfinite",
        default="raise",
        choices=("raise", "drop", "ignore"),
        help="NaN/inf or impossible input values: refuse, drop those events, or keep them",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed run of the same command from its last complete chunk "
        "(journal OUTPUT.journal.json); the result equals an uninterrupted run",
    )
    add_debug_arguments(p)
    return p


def _run(args: argparse.Namespace) -> int:
    from hepvld.api import load
    from hepvld.io.unfolded import unfold_files

    configure_logging(args)
    if args.resume and args.format != "root":
        raise CLIError(
            f"--resume continues a ROOT output chunk by chunk; --format {args.format} is "
            "written in one go: rerun without --resume"
        )
    with reading(f"checkpoint {args.checkpoint}"):
        model = load(args.checkpoint, device=args.device)
    log.info(
        "unfolding %s x %d draws (%s, %d steps per draw), %d events at a time",
        f"at most {args.max_events} events" if args.max_events else "all events",
        args.n_samples,
        args.sampler,
        args.steps,
        args.chunk_events,
    )
    if args.format == "hdf5":
        from hepvld.io.unbinned import unfold_to_unbinned, write_unbinned

        if args.replicas < 0:
            raise CLIError(f"--replicas must be >= 0, got {args.replicas}")
        result = unfold_to_unbinned(
            args.files,
            model=model,
            checkpoint=args.checkpoint,
            n_replicas=args.replicas,
            bootstrap_seed=args.bootstrap_seed,
            chunk_events=args.chunk_events,
            tree=args.tree,
            max_events=args.max_events,
            on_nonfinite=args.on_nonfinite,
            n_samples=args.n_samples,
            sampler=args.sampler,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
        )
        write_unbinned(args.output, result)
        log.info(
            "wrote %d events x %d draws x %d replicas to %s (hepvld-unbinned)",
            len(result),
            args.n_samples,
            args.replicas,
            args.output,
        )
        log.info("selection:\n%s", result.meta["cutflow"])
        return 0
    n, cutflow = unfold_files(
        args.files,
        args.output,
        model=model,
        chunk_events=args.chunk_events,
        tree=args.tree,
        max_events=args.max_events,
        on_nonfinite=args.on_nonfinite,
        compression=args.compression,
        n_samples=args.n_samples,
        sampler=args.sampler,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        resume=args.resume,
    )
    log.info("wrote %d events x %d draws to %s", n, args.n_samples, args.output)
    log.info("selection:\n%s", cutflow)
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "hepvld-unfold") -> int:
    """Run ``hepvld unfold``; returns the exit status."""
    return run_cli(build_parser(prog), _run, argv)
