"""Throughput of ``hepvld.generate``: generated and selected events per CPU-second.

Runs the full chain (Pythia 8, particle level, detector, selection, ROOT writing) in
this process, with and without multi-parton interactions, and prints the median over
a few repeats. CPU time is this process's ``time.process_time`` around the whole run
(Pythia initialisation and writing included).

    .venv/bin/python benchmarks/bench_generate.py --events 2000 --repeats 3
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from hepvld.cli._common import Parser
from hepvld.generate import generate


def measure(n_events: int, *, mpi: bool, seed: int, directory: Path) -> tuple[float, float, float]:
    """(generated per CPU-s, selected per CPU-s, selected fraction) of one run."""
    start = time.process_time()
    summary = generate(
        directory / f"bench_{seed}.root", n_events, seed=seed, count="generated", mpi=mpi
    )
    cpu = time.process_time() - start
    return (
        summary.n_generated / cpu,
        summary.n_written / cpu,
        summary.n_written / summary.n_generated,
    )


def main() -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="generated events per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for mpi in (True, False):
            runs = [
                measure(args.events, mpi=mpi, seed=100 + i, directory=Path(tmp))
                for i in range(args.repeats)
            ]
            medians = (statistics.median(column) for column in zip(*runs, strict=True))
            generated, selected, fraction = medians
            print(
                f"MPI {'on ' if mpi else 'off'}: {generated:7.1f} generated ev/CPU-s, "
                f"{selected:6.2f} selected ev/CPU-s (selected fraction {fraction:.3f}; "
                f"median of {args.repeats} x {args.events} events)"
            )


if __name__ == "__main__":
    main()
