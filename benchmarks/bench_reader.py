"""Reader throughput: ROOT file -> selected, padded tensors (events read per second).

Usage::

    python benchmarks/bench_reader.py                 # synthetic 100k-event file
    python benchmarks/bench_reader.py --file my.root  # any hepvld / NanoAOD / Delphes file

Without ``--file`` a 100k-event file in hepvld's layout is written to a temporary
directory (10k synthetic events replicated, event numbers made unique). Reported: the
best of ``--repeat`` runs for ``open_events`` alone and for ``load_tensors``
(read + select + detector tensors + 55 parton targets).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np

from hepvld.cli._common import Parser
from hepvld.data import load_tensors
from hepvld.io import open_events
from hepvld.testing.synthetic import toy_events, write_root


def build_file(path: Path, n_events: int, block: int = 10_000) -> None:
    base = toy_events(min(block, n_events), seed=0)
    reps = -(-n_events // len(base))
    events = ak.concatenate([base] * reps)[:n_events]
    events = ak.with_field(events, np.arange(n_events, dtype=np.uint64), "event")
    write_root(str(path), events)


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, help="ROOT file to read (default: synthetic)")
    ap.add_argument("--events", type=int, default=100_000, help="size of the synthetic file")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            path = Path(tmp) / "bench.root"
            t0 = time.perf_counter()
            build_file(path, args.events)
            print(
                f"built {args.events} synthetic events in {time.perf_counter() - t0:.1f} s "
                f"({path.stat().st_size / 1e6:.1f} MB)"
            )
        t_open, events = best_of(lambda: open_events(path), args.repeat)
        n = len(events)
        t_load, tensors = best_of(lambda: load_tensors(path), args.repeat)
        print(f"file: {path} ({n} events)")
        print(f"open_events : {t_open:6.2f} s  {n / t_open:10.0f} events/s")
        print(
            f"load_tensors: {t_load:6.2f} s  {n / t_load:10.0f} events/s "
            f"({len(tensors)} selected -> objects {tensors.objects.shape})"
        )


if __name__ == "__main__":
    main()
