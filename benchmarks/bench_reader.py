"""Reader throughput: ROOT file -> selected, padded tensors (events read per second).

Usage::

    python benchmarks/bench_reader.py                       # synthetic 100k-event file
    python benchmarks/bench_reader.py --basket 136          # baskets as the generator's
    python benchmarks/bench_reader.py --file my.root        # any hepvld / NanoAOD / Delphes

Without ``--file`` a file of ``--events`` distinct synthetic events in hepvld's layout is
written to a temporary directory with the generator's compression (``zstd:5``,
``--compression``) and ``--basket`` entries per basket (default: one basket per branch).
Everything runs in this one process, one after the other, on one core; each figure is the
best of ``--repeat`` runs. Printed, as events read per second and as fractions of
``open_events`` and of the 500k goal:

* ``load_tensors`` with the columnar path (``reader="columnar"``, the default for ROOT
  files) and with the event path (``reader="events"``, the path before it);
* ``open_events`` (every branch into event records);
* the read alone of the 26 branches the tensors need (``uproot`` ``tree.arrays``) and
  the same baskets read one by one (``TBranch.basket``): the floor of the columnar path
  is the read alone.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hepvld.cli._common import Parser
from hepvld.data import load_tensors
from hepvld.io import open_events
from hepvld.testing.synthetic import toy_events, write_root

GOAL = 500_000  # events/s, issue 15 §4


def build_file(
    path: Path, n_events: int, *, basket: int | None = None, compression: str = "zstd:5"
) -> None:
    """``n_events`` distinct synthetic events (seed 0) written as hepvld's layout."""
    write_root(str(path), toy_events(n_events, seed=0), basket_size=basket, compression=compression)


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _needed_branches(path: Path) -> tuple[Any, list[str]]:
    """The open tree and the branch names the columnar path reads."""
    from hepvld.columnar import wanted
    from hepvld.io.reader import _open_tree

    t = _open_tree(str(path), "Events", "auto", None)
    names = {
        t.schema.branch(*t.plan[out][f])
        for out, fields in wanted(True).items()
        for f in (*fields, "event")
        if out in t.plan and f in t.plan[out]
    }
    return t, sorted(names)


def read_only(path: Path) -> None:
    t, names = _needed_branches(path)
    try:
        t.tree.arrays(names, how=dict)
    finally:
        t.tree.file.close()


def decompress_only(path: Path) -> None:
    t, names = _needed_branches(path)
    try:
        for name in names:
            branch = t.tree[name]
            for i in range(branch.num_baskets):
                branch.basket(i)
    finally:
        t.tree.file.close()


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, help="ROOT file to read (default: synthetic)")
    ap.add_argument("--events", type=int, default=100_000, help="size of the synthetic file")
    ap.add_argument("--basket", type=int, help="entries per basket (default: one basket)")
    ap.add_argument("--compression", default="zstd:5", help="synthetic file compression")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            path = Path(tmp) / "bench.root"
            t0 = time.perf_counter()
            build_file(path, args.events, basket=args.basket, compression=args.compression)
            print(
                f"built {args.events} synthetic events in {time.perf_counter() - t0:.1f} s "
                f"({path.stat().st_size / 1e6:.1f} MB, {args.compression}, "
                f"{args.basket or 'all'} entries per basket)"
            )
        load_tensors(path, entry_stop=1000)  # imports, caches
        rows: list[tuple[str, float]] = []
        t_col, tensors = best_of(lambda: load_tensors(path, reader="columnar"), args.repeat)
        t_ev, old = best_of(lambda: load_tensors(path, reader="events"), args.repeat)
        t_open, events = best_of(lambda: open_events(path), args.repeat)
        t_read, _ = best_of(lambda: read_only(path), args.repeat)
        t_dec, _ = best_of(lambda: decompress_only(path), args.repeat)
        n = len(events)
        same = all(
            np.array_equal(getattr(tensors, k), getattr(old, k), equal_nan=True)
            for k in ("objects", "mask", "globals", "targets", "weights", "event")
        )
        rows = [
            ("load_tensors, columnar path (new)", t_col),
            ("load_tensors, event path (old)", t_ev),
            ("open_events (all branches -> records)", t_open),
            ("read of the 26 needed branches alone", t_read),
            ("the same baskets one by one (TBranch.basket)", t_dec),
        ]
        print(
            f"file: {path} ({n} events, {len(tensors)} selected -> objects "
            f"{tensors.objects.shape}); columnar == event path: {same}"
        )
        print(f"| | events/s | of open_events | of {GOAL // 1000}k |")
        print("|---|---:|---:|---:|")
        for name, t in rows:
            print(f"| {name} | {n / t:,.0f} | {t_open / t:.0%} | {n / t / GOAL:.0%} |")
        print(f"columnar / event path: {t_ev / t_col:.2f}x")


if __name__ == "__main__":
    main()
