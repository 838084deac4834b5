"""``hepvld.unfold`` end to end vs the bare ε-network cost of the same number of NFE.

    python benchmarks/bench_unfold_overhead.py --preset small --events 2000 --samples 20 \
        --steps 20 --threads 1

Writes a synthetic tt̄ file (``hepvld.testing.synthetic``), trains a VLD of ``--preset`` for two
steps (timing does not depend on the weights) and times, in one process at the same
thread count:

* ``end to end``: ``python -m hepvld.unfold``'s ``main`` (open the file, select, build the
  tensors, draw, convert to four-vectors, write the ROOT output);
* ``bare eps``: ``NFE`` calls of the ε-network on the same number of draws, in the same
  chunks of ``batch_size x S`` rows (``dpmpp2m`` with ``steps`` steps makes ``steps``
  calls).

The ratio is the overhead (goal <= 1.2). ``--profile`` also prints the functions with
the most cumulative time in the end-to-end run (cProfile).
"""

from __future__ import annotations

import cProfile
import logging
import pstats
import tempfile
import time
from pathlib import Path

import torch

from hepvld.cli._common import Parser
from hepvld.testing.synthetic import toy_events, write_root


def make_checkpoint(root: Path, data: Path, preset: str) -> Path:
    from hepvld.train import main as train_main

    run = root / "run"
    train_main(
        [
            str(data),
            "--run-dir",
            str(run),
            "--preset",
            preset,
            "--train.max-steps",
            "2",
            "--train.batch-size",
            "256",
            "--train.warmup-steps",
            "1",
            "--train.device",
            "cpu",
        ]
    )
    return run


def bare_eps(model, n_draws: int, chunk: int, nfe: int) -> float:
    """Seconds of ``nfe`` ε-network calls over ``n_draws`` rows in chunks of ``chunk``."""
    (d,), c = model.noise_shape, model.condition_dim
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, n_draws, chunk):
            rows = min(chunk, n_draws - start)
            z, z_y, t = torch.randn(rows, d), torch.randn(rows, c), torch.full((rows,), 0.5)
            for _ in range(nfe):
                model.diffusion.eps(z, t, z_y, shared_time=True)
    return time.perf_counter() - t0


def main() -> None:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--events", type=int, default=2000, help="synthetic events generated")
    p.add_argument("--samples", type=int, default=20, help="posterior draws per event")
    p.add_argument("--steps", type=int, default=20, help="dpmpp2m steps (= NFE)")
    p.add_argument("--batch-size", type=int, default=None, help="events per call (auto)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    from hepvld.api import load
    from hepvld.cli.unfold import main as unfold_main
    from hepvld.runtime import auto_batch_size

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "toy.root"
        write_root(str(data), toy_events(args.events, seed=3))
        run = make_checkpoint(root, data, args.preset)
        model = load(run).model
        batch = args.batch_size or auto_batch_size(args.samples, model=model)
        cli = [
            str(data),
            "--checkpoint",
            str(run),
            "-o",
            str(root / "out.root"),
            "-S",
            str(args.samples),
            "--steps",
            str(args.steps),
            "--sampler",
            "dpmpp2m",
            "--batch-size",
            str(batch),
        ]
        logging.getLogger("hepvld").setLevel(logging.WARNING)
        if unfold_main(cli) != 0:  # warm-up (imports, first-call allocations)
            raise SystemExit("hepvld unfold failed (see above)")
        logging.getLogger("hepvld").setLevel(logging.WARNING)
        t0 = time.perf_counter()
        assert unfold_main(cli) == 0
        total = time.perf_counter() - t0
        import uproot

        with uproot.open(root / "out.root") as f:
            n_events = f["Unfolded"].num_entries
        eps = bare_eps(model, n_events * args.samples, batch * args.samples, args.steps)
        print(
            f"preset={args.preset} threads={torch.get_num_threads()} events={n_events} "
            f"S={args.samples} NFE={args.steps} batch={batch} events/call"
        )
        print(
            f"end to end {total:.2f} s ({n_events * args.samples / total:.0f} event-draws/s); "
            f"bare eps {eps:.2f} s ({n_events * args.samples / eps:.0f} event-draws/s); "
            f"ratio {total / eps:.2f}x"
        )
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(unfold_main, cli)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
