"""cProfile of ``hepvld.data.load_tensors`` on a synthetic file; shares by package.

    python benchmarks/profile_reader.py --events 50000

Writes the file as ``bench_reader.py`` does, profiles one ``load_tensors`` call and prints
:mod:`profile_shares`' table plus the hepvld functions with the most cumulative time.
"""

from __future__ import annotations

import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from bench_reader import build_file
from profile_shares import main as shares_main

from hepvld.cli._common import Parser
from hepvld.data import load_tensors


def main() -> None:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--reader", default="auto", help="load_tensors reader: auto, columnar, events")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.root"
        build_file(path, args.events)
        load_tensors(path, reader=args.reader)  # warm caches
        t0 = time.perf_counter()
        load_tensors(path, reader=args.reader)
        plain = time.perf_counter() - t0
        print(f"load_tensors {plain:.2f} s -> {args.events / plain:.0f} events/s (no profiler)")
        prof = cProfile.Profile()
        prof.runcall(load_tensors, path, reader=args.reader)
        out = Path(tmp) / "reader.prof"
        prof.dump_stats(out)
        import sys

        sys.argv = ["profile_shares", str(out)]
        shares_main()
        stats = pstats.Stats(str(out))
        stats.sort_stats("cumulative").print_stats("hepvld", 15)


if __name__ == "__main__":
    main()
