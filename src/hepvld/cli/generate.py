"""``hepvld generate -n N -o out.root [options]``: generate tt̄ events into a ROOT file.

Also runs as ``python -m hepvld.generate``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from hepvld.cli._common import CLIError, Parser, add_debug_arguments
from hepvld.cli._common import run as run_cli

__all__ = ["build_parser", "main"]


def build_parser(prog: str = "hepvld-generate") -> argparse.ArgumentParser:
    """The argument parser of ``hepvld generate``."""
    from hepvld.generate.config import PROCESSES

    parser = Parser(
        prog=prog,
        description=(
            "Generate semi-leptonic tt̄ events at 13 TeV (Pythia 8, anti-kT R=0.5 jets, "
            "CMS-like parametric detector) into a NanoAOD-flavoured ROOT file."
        ),
    )
    parser.add_argument("-n", "--n-events", type=int, help="number of events (see --count)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the killed run of --output (same options)"
    )
    parser.add_argument(
        "--shard", default=None, help="i/n: generate shard i of n (needs --count generated)"
    )
    parser.add_argument(
        "--merge", nargs="+", metavar="SHARD", help="merge complete shard files into --output"
    )
    parser.add_argument("-o", "--output", required=True, help="output ROOT file")
    parser.add_argument(
        "--count",
        choices=("selected", "generated"),
        default="selected",
        help="whether --n-events counts written (selected) or generated events",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="run seed (same seed and options => same file)"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--top-mass", type=float, default=173.0, help="top-quark mass [GeV]")
    parser.add_argument("--chunk-size", type=int, default=1000, help="generated events per chunk")
    parser.add_argument(
        "--compression", default="zstd:5", help="zstd|lz4|zlib|lzma[:level] or none"
    )
    parser.add_argument("--max-jets", type=int, default=20, help="jets kept per event")
    parser.add_argument(
        "--no-select",
        dest="select",
        action="store_false",
        help="write all semi-leptonic events (the selection is on by default; --no-select turns it off)",
    )
    parser.add_argument(
        "--process",
        default="ttbar",
        choices=PROCESSES,
        help="ttbar: semi-leptonic tt̄ (the signal); single-top, wjets: backgrounds with "
        "the same detector and selection (no tt̄ chain, so no parton-level target)",
    )
    parser.add_argument(
        "--no-mpi",
        dest="mpi",
        action="store_false",
        help="multi-parton interactions are on by default; --no-mpi turns them off",
    )
    parser.add_argument(
        "--no-isr",
        dest="isr",
        action="store_false",
        help="initial-state radiation is on by default; --no-isr turns it off",
    )
    parser.add_argument(
        "--no-fsr",
        dest="fsr",
        action="store_false",
        help="final-state radiation is on by default; --no-fsr turns it off",
    )
    parser.add_argument(
        "--no-hadronisation",
        dest="hadronisation",
        action="store_false",
        help="hadronisation and decays are on by default; --no-hadronisation turns them off",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="a progress bar is shown by default; --no-progress hides it",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more logging (-vv for debug); on an error also print the traceback",
    )
    add_debug_arguments(parser, verbose=False)
    return parser


def _run(args: argparse.Namespace) -> int:
    verbosity = 2 if args.debug else min(args.verbose, 2)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[verbosity]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")

    from hepvld.generate.runner import generate
    from hepvld.generate.shards import merge_shards, parse_shard

    if args.merge:
        n = merge_shards(args.output, args.merge, compression=args.compression)
        print(f"merged {len(args.merge)} shards: wrote {n} events to {args.output}")
        return 0
    if args.n_events is None:
        raise CLIError("the following arguments are required: -n/--n-events (or --merge)")
    shard = parse_shard(args.shard) if args.shard is not None else None
    try:
        summary = generate(
            args.output,
            args.n_events,
            seed=args.seed,
            count=args.count,
            workers=args.workers,
            top_mass=args.top_mass,
            mpi=args.mpi,
            isr=args.isr,
            fsr=args.fsr,
            hadronisation=args.hadronisation,
            chunk_size=args.chunk_size,
            select=args.select,
            max_jets=args.max_jets,
            process=args.process,
            compression=args.compression,
            progress=args.progress,
            shard=shard,
            resume=args.resume,
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: {args.output} holds the chunks finished so far (see above); "
            "rerun with the same options and --resume to continue",
            file=sys.stderr,
        )
        return 130
    print(summary.cutflow)
    print(
        f"wrote {summary.n_written} events to {summary.output} in {summary.wall_seconds:.1f} s "
        f"({summary.n_chunks} chunks, {summary.cpu_seconds:.1f} CPU-s: "
        f"{summary.generated_per_cpu_second:.1f} generated / "
        f"{summary.written_per_cpu_second:.1f} written events per CPU-s)"
    )
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "hepvld-generate") -> int:
    """Run ``hepvld generate``; returns the exit status."""
    return run_cli(build_parser(prog), _run, argv)
