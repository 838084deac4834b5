"""The hepvld coffea processor with three executors: same seed, identical histograms.

    python examples/coffea_executors.py                      # generate + train a toy, run all
    python examples/coffea_executors.py --files a.root b.root --checkpoint run

Without ``--files`` / ``--checkpoint`` it generates two small files (Pythia 8, seconds)
and trains the ``tiny`` preset for one epoch in a temporary directory. It then runs
:class:`hepvld.processor.UnfoldingProcessor` with ``processor.Runner`` and

1. the iterative executor,
2. the futures executor (2 worker processes),
3. the dask executor on a ``distributed.LocalCluster`` (2 worker processes, 1 thread each;
   needs the ``dask`` extra: ``pip install "coffea[dask-awkward]" distributed``),

each with a different chunk size, and checks that all histograms and cut-flows agree
bin by bin. On a real cluster replace the ``LocalCluster`` by ``Client("tcp://scheduler:8786")``
(see docs/coffea.md).
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepvld.cli._common import Parser

log = logging.getLogger("coffea_executors")


def make_toy(workdir: Path) -> tuple[list[str], str]:
    """Two generated files and a tiny model trained on the first one."""
    from hepvld.cli.train import main as train_main
    from hepvld.generate import generate

    files = []
    for i, seed in enumerate((1, 2)):
        path = workdir / f"tt_{i}.root"
        generate(path, 200, seed=seed, mpi=False, chunk_size=1000, progress=False)
        files.append(str(path))
    run = workdir / "run"
    rc = train_main(
        [
            files[0],
            "--run-dir",
            str(run),
            "--preset",
            "tiny",
            "--train.epochs",
            "1",
            "--train.batch-size",
            "64",
            "--train.warmup-steps",
            "5",
        ]
    )
    assert rc == 0
    return files, str(run)


def same_output(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two processor outputs hold identical histograms and cut-flows."""
    if a.keys() != b.keys():
        return False
    for dataset in a:
        x, y = a[dataset], b[dataset]
        if x["cutflow"].to_dict() != y["cutflow"].to_dict():
            return False
        for level in ("unfolded", "detector", "truth"):
            for name, h in x[level].items():
                if not np.array_equal(h.view(flow=True), y[level][name].view(flow=True)):
                    return False
    return True


def run(
    executor: Any, fileset: dict[str, list[str]], proc: Any, chunksize: int
) -> tuple[dict, float]:
    """Run ``proc`` over ``fileset`` with ``executor``; returns ``(output, seconds)``."""
    from coffea import processor

    from hepvld.nanoevents import HepvldSchema

    runner = processor.Runner(executor=executor, schema=HepvldSchema, chunksize=chunksize)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Missing cross-reference", category=RuntimeWarning
        )
        out = runner(fileset, proc, treename="Events")
    return out, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 when every executor gives the same histograms."""
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--files", nargs="*")
    p.add_argument("--checkpoint")
    p.add_argument("--n-samples", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--no-dask", action="store_true", help="skip the LocalCluster run")
    args = p.parse_args(argv)

    from coffea import processor

    from hepvld.processor import UnfoldingProcessor

    with tempfile.TemporaryDirectory() as tmp:
        files, checkpoint = args.files, args.checkpoint
        if not files or not checkpoint:
            files, checkpoint = make_toy(Path(tmp))
        fileset = {"ttbar": files}
        proc = UnfoldingProcessor(
            checkpoint,
            ["t_had_pt", "t_had_mass", "ttbar_mass", "nu_eta"],
            n_samples=args.n_samples,
            steps=args.steps,
            seed=7,
        )

        outputs = {}
        outputs["iterative"], t = run(
            processor.IterativeExecutor(status=False), fileset, proc, 100_000
        )
        log.info("iterative: %.1f s", t)
        outputs["futures"], t = run(
            processor.FuturesExecutor(workers=2, status=False), fileset, proc, 64
        )
        log.info("futures (2 workers): %.1f s", t)
        if not args.no_dask:
            from distributed import Client, LocalCluster

            with (
                LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster,
                Client(cluster) as client,
            ):
                executor = processor.DaskExecutor(client=client, status=False)
                outputs["dask"], t = run(executor, fileset, proc, 50)
            log.info("dask LocalCluster (2 workers): %.1f s", t)

    ref = outputs["iterative"]
    print(ref["ttbar"]["cutflow"])
    ok = True
    for name, out in outputs.items():
        same = same_output(ref, out)
        ok &= same
        print(f"{name:>10}: {'identical' if same else 'DIFFERENT'} histograms")
    return 0 if ok else 1


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("distributed").setLevel(logging.WARNING)
    raise SystemExit(main())
