"""Run the hepvld coffea processor over ROOT files and plot unfolded vs detector vs truth.

    python analysis/coffea_unfolding.py tt.root --checkpoint run -o plots \\
        --n-samples 20 --steps 20 --observables t_had_pt t_had_mass ttbar_mass

Writes ``output.coffea`` (``coffea.util.save`` of the merged histograms + cut-flows),
``cutflow.txt`` and one ``{observable}.png`` ratio plot per observable. Executed by the
test suite on a tiny sample (``tests/test_processor.py``), so it cannot rot.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from hepvld.cli._common import Parser

log = logging.getLogger("coffea_unfolding")


def _parser() -> argparse.ArgumentParser:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="input ROOT files (tree Events)")
    p.add_argument("--checkpoint", required=True, help="run directory of python -m hepvld.train")
    p.add_argument("-o", "--output", default="coffea_unfolding", help="output directory")
    p.add_argument("--dataset", default="ttbar")
    p.add_argument(
        "--observables",
        nargs="+",
        default=None,
        help="built-in observables (default: hepvld.observables.DEFAULT_OBSERVABLES)",
    )
    p.add_argument("--n-samples", type=int, default=20)
    p.add_argument("--sampler", default="dpmpp2m", choices=("ddim", "pndm", "dpmpp2m"))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunksize", type=int, default=50_000)
    p.add_argument("--executor", default="iterative", choices=("iterative", "futures"))
    p.add_argument("--workers", type=int, default=2, help="futures executor workers")
    p.add_argument("--density", action="store_true", help="normalise the plots to unit area")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    from coffea import processor, util

    from hepvld.evaluation.coffea_plots import plot_unfolded
    from hepvld.evaluation.plots import save_figure
    from hepvld.nanoevents import HepvldSchema
    from hepvld.observables import DEFAULT_OBSERVABLES
    from hepvld.processor import UnfoldingProcessor

    proc = UnfoldingProcessor(
        args.checkpoint,
        args.observables or DEFAULT_OBSERVABLES,
        n_samples=args.n_samples,
        sampler=args.sampler,
        steps=args.steps,
        seed=args.seed,
    )
    executor = (
        processor.IterativeExecutor(status=False)
        if args.executor == "iterative"
        else processor.FuturesExecutor(workers=args.workers, status=False)
    )
    runner = processor.Runner(executor=executor, schema=HepvldSchema, chunksize=args.chunksize)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # hepvld files carry no NanoAOD cross-reference index branches (docs/schema.md)
        warnings.filterwarnings(
            "ignore", message="Missing cross-reference", category=RuntimeWarning
        )
        result = runner({args.dataset: [str(f) for f in args.files]}, proc, treename="Events")
    elapsed = time.perf_counter() - start
    out = result[args.dataset]
    n_events = out["cutflow"].total
    log.info(
        "processed %d events in %.1f s (%.1f events/s)\n%s",
        n_events,
        elapsed,
        n_events / elapsed if elapsed else float("nan"),
        out["cutflow"],
    )

    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)
    util.save(result, str(outdir / "output.coffea"))
    (outdir / "cutflow.txt").write_text(f"{out['cutflow']}\n\n{out['truth_cutflow']}\n")
    for name in out["unfolded"]:
        fig, _ = plot_unfolded(out, name, density=args.density)
        save_figure(fig, outdir / name, formats=("png",))
    log.info("wrote %d plots to %s", len(out["unfolded"]), outdir)
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    raise SystemExit(main())
