"""Throughput of the coffea UnfoldingProcessor (events/s): iterative vs a dask LocalCluster.

    python benchmarks/bench_processor.py --events 1000 --preset paper --n-samples 10 --steps 20

Generates one file (``--events`` selected events, MPI off) and trains ``--preset`` for
one short epoch in a temporary directory (weights do not change the cost), or uses
``--files`` / ``--checkpoint``. Each configuration runs once after a warm-up chunk
(model load and imports excluded): the iterative executor with 1 and with all torch
threads, and a ``distributed.LocalCluster`` with ``--workers`` processes × 1 thread
(model loading on each worker included: that is what a real job pays). Rows report
wall time, input events/s and event-draws/s.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from hepvld.cli._common import Parser


def _run(executor: Any, files: list[str], proc: Any, chunksize: int) -> tuple[dict, float]:
    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    runner = processor.Runner(executor=executor, schema=NanoAODSchema, chunksize=chunksize)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Missing cross-reference", category=RuntimeWarning
        )
        out = runner({"ttbar": files}, proc, treename="Events")
    return out, time.perf_counter() - start


def main() -> None:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--files", nargs="*")
    p.add_argument("--checkpoint")
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--preset", default="paper")
    p.add_argument("--n-samples", type=int, default=10)
    p.add_argument("--sampler", default="dpmpp2m")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--chunksize", type=int, default=250)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.WARNING)

    from coffea import processor
    from distributed import Client, LocalCluster

    from hepvld.processor import UnfoldingProcessor

    tmp = tempfile.TemporaryDirectory()
    files, checkpoint = args.files, args.checkpoint
    if not files or not checkpoint:
        from hepvld.generate import generate
        from hepvld.train import main as train_main

        path = Path(tmp.name) / "bench.root"
        generate(path, args.events, seed=11, mpi=False, workers=os.cpu_count() or 1, progress=False)
        files, checkpoint = [str(path)], str(Path(tmp.name) / "run")
        train_main(
            [
                str(path),
                "--run-dir",
                checkpoint,
                "--preset",
                args.preset,
                "--train.epochs",
                "1",
                "--train.batch-size",
                "256",
                "--train.warmup-steps",
                "1",
            ]
        )

    rows = []

    def report(name: str, out: dict, seconds: float) -> None:
        n = out["ttbar"]["cutflow"].total
        row = {
            "executor": name,
            "events": n,
            "seconds": round(seconds, 2),
            "events_per_s": round(n / seconds, 1),
            "draws_per_s": round(n * args.n_samples / seconds, 1),
        }
        rows.append(row)
        print(
            f"{name:<34} {n:>7d} events {seconds:>8.2f} s {row['events_per_s']:>9.1f} ev/s "
            f"{row['draws_per_s']:>10.1f} draws/s"
        )

    def make(threads: int | None) -> UnfoldingProcessor:
        return UnfoldingProcessor(
            checkpoint,
            n_samples=args.n_samples,
            sampler=args.sampler,
            steps=args.steps,
            torch_threads=threads,
        )

    print(
        f"n_samples={args.n_samples} sampler={args.sampler} steps={args.steps} "
        f"chunksize={args.chunksize} preset={args.preset} cpus={os.cpu_count()}"
    )
    _run(
        processor.IterativeExecutor(status=False), files, make(None), 10**9
    )  # warm-up: load, imports
    for threads in (1, None):
        out, t = _run(
            processor.IterativeExecutor(status=False), files, make(threads), args.chunksize
        )
        report(f"iterative, torch threads={threads or os.cpu_count()}", out, t)
    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        executor = processor.DaskExecutor(client=client, status=False)
        out, t = _run(executor, files, make(1), args.chunksize)
        report(f"dask LocalCluster {args.workers}x1 thread", out, t)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
