"""Unfolding quality vs sampler and number of steps for a trained checkpoint (issue #3 §5).

    python benchmarks/bench_quality_steps.py --checkpoint runs/vld --data train.root \\
        --n-events 500 --steps 10 20 50 100 1000

For every sampler (ddpm, ddim, pndm, dpmpp2m) and step count, the held-out events (the
test split by event number of ``--data``, as ``python -m hepvld.evaluate``) are unfolded
with ``hepvld.unfold`` (``--n-samples`` draws per event, one by default; the same
per-event initial noise for every setting) and compared with the evaluation library
(:func:`hepvld.evaluation.compare_samples`, one draw per event, paired event bootstrap):

* ``W1 vs truth``: the 1-D Wasserstein distance to the true partons summed over the 55
  components (the paper's Table 1 column), beside the truth-vs-truth floor (the same
  between the test truth and an independent truth sample of the same size: the training
  split of the checkpoint's files, else the test truth in halves);
* ``W1 vs 1000``: the same distance to the draws of the same sampler at the largest step
  count (1000 by default): how few steps reach the many-step quality. For the
  deterministic samplers the draws start from the same noise, so this is a distance
  between two maps of one noise sample (0 at convergence); DDPM draws fresh noise per
  step, so its value includes the sampling noise of two independent samples.

With ``--distilled 1 2 4 8`` the run's distilled students (``RUN/distilled/steps-N``,
written by ``hepvld distill RUN``) are measured too, as sampler ``distilled``: their
``W1 vs`` column is the distance to the **teacher's** draws with ``--distilled-reference``
(``ddim``, the sampler a student is distilled from) at the largest step count, from the
same noise.

Prints a Markdown table (``--json`` also writes the rows).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from hepvld.api import load
from hepvld.cli._common import Parser
from hepvld.diffusion import SAMPLERS
from hepvld.evaluate import load_evaluation_data, load_training_truth, unfold_draws
from hepvld.evaluation import compare_samples, truth_floor


def _w1(result: object) -> tuple[float, float]:
    value, error = result.aggregates("wasserstein")["total"]  # type: ignore[attr-defined]
    return float(value), float(error)


def _fmt(pair: tuple[float, float]) -> str:
    from hepvld.evaluation.tables import format_value

    return format_value(*pair)


def main() -> None:
    p = Parser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--checkpoint", "-c", required=True, type=Path, help="run directory or checkpoint"
    )
    p.add_argument(
        "--data", "-d", nargs="+", required=True, type=Path, help="ROOT file(s) with truth"
    )
    p.add_argument(
        "--split",
        choices=("test", "all"),
        default="test",
        help="held-out test split of --data (as in training) or all its events",
    )
    p.add_argument(
        "--n-events", type=int, default=500, help="held-out events used (the first ones)"
    )
    p.add_argument("--max-events", type=int, default=None, help="entries of --data read")
    p.add_argument(
        "--n-samples", type=int, default=1, help="draws per event (the distances use the first)"
    )
    p.add_argument("--samplers", nargs="+", default=sorted(SAMPLERS), choices=sorted(SAMPLERS))
    p.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[10, 20, 50, 100, 1000],
        help="step counts; the largest is the reference of 'W1 vs ref'",
    )
    p.add_argument(
        "--distilled",
        type=int,
        nargs="+",
        default=[],
        help="also the distilled students of these step counts (RUN/distilled/steps-N)",
    )
    p.add_argument(
        "--distilled-reference",
        default="ddim",
        choices=sorted(SAMPLERS),
        help="teacher sampler whose draws at the largest --steps the students are compared to",
    )
    p.add_argument("--batch-size", type=int, default=1024, help="events per network call")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap replicates of the errors")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws and the bootstrap")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    model = load(args.checkpoint, device=args.device)
    fractions = tuple(model.meta.get("split", (0.8, 0.1, 0.1)))
    data = load_evaluation_data(
        args.data,
        split=args.split,
        fractions=fractions,
        max_jets=model.max_jets,
        max_events=args.max_events,
    )
    if len(data) > args.n_events:
        data = data.subset(np.arange(len(data)) < args.n_events)
    truth, w = data.truth, data.weights
    rng = np.random.default_rng(args.seed)
    train = load_training_truth(model.meta, max_jets=model.max_jets)
    floor_src = (
        "training split, same size" if train is not None else "test truth halves (B/2 events)"
    )
    floor = _w1(
        truth_floor(
            truth, w, second=None if train is None else train[0], n_boot=args.n_boot, rng=rng
        )
    )
    print(
        f"checkpoint {args.checkpoint} ({model.name}); {data.description}; using {len(data)} events, "
        f"{args.n_samples} draw(s) each; floor: {floor_src}"
    )

    steps = sorted(set(args.steps))
    ref_steps = steps[-1]
    rows = []

    def run(name: str, k: int) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        d, ok = unfold_draws(
            data,
            model,
            n_samples=args.n_samples,
            sampler=name,
            steps=k,
            batch_size=args.batch_size,
            seed=args.seed,
            device=args.device,
        )
        wall = time.perf_counter() - t0
        if not ok.all():
            raise SystemExit(f"{int((~ok).sum())} events failed the model's selection")
        print(f"  {name:9s} {k:5d} steps: {wall:7.1f} s", flush=True)
        return d[:, 0], wall

    teacher_ref: np.ndarray | None = None
    groups = [(name, steps) for name in args.samplers]
    if args.distilled:
        groups.append(("distilled", sorted(set(args.distilled))))
    for name, counts in groups:
        draws: dict[int, np.ndarray] = {}
        times: dict[int, float] = {}
        for k in counts:
            draws[k], times[k] = run(name, k)
        if name == args.distilled_reference:
            teacher_ref = draws[ref_steps]
        if name == "distilled":
            if teacher_ref is None:
                teacher_ref, _ = run(args.distilled_reference, ref_steps)
            reference = teacher_ref
        else:
            reference = draws[ref_steps]
        for k in counts:
            vs_truth = _w1(
                compare_samples(draws[k], truth, w, w, paired=True, n_boot=args.n_boot, rng=rng)
            )
            vs_ref = _w1(
                compare_samples(draws[k], reference, w, w, paired=True, n_boot=args.n_boot, rng=rng)
            )
            n_bad = int((~np.isfinite(draws[k])).any(axis=1).sum())
            rows.append(
                {
                    "sampler": name,
                    "steps": k,
                    "w1_truth": vs_truth[0],
                    "w1_truth_err": vs_truth[1],
                    "w1_ref": vs_ref[0],
                    "w1_ref_err": vs_ref[1],
                    "reference": f"{args.distilled_reference if name == 'distilled' else name}"
                    f" {ref_steps}",
                    "floor": floor[0],
                    "floor_err": floor[1],
                    "wall_s": times[k],
                    "non_finite_events": n_bad,
                }
            )

    print()
    print(f"| sampler | steps | W1 vs truth (sum 55) | W1 vs {ref_steps} steps | wall [s] |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        own_ref = r["sampler"] != "distilled" and r["steps"] == ref_steps
        vs_ref = "(reference)" if own_ref else _fmt((r["w1_ref"], r["w1_ref_err"]))
        print(
            f"| {r['sampler']} | {r['steps']} | {_fmt((r['w1_truth'], r['w1_truth_err']))} | "
            f"{vs_ref} | {r['wall_s']:.1f} |"
        )
    print(f"| truth floor ({floor_src}) | | {_fmt(floor)} | | |")
    if args.distilled:
        print(
            f"\n`distilled` rows: W1 vs the teacher's {args.distilled_reference} draws at "
            f"{ref_steps} steps (same noise); steps = NFE."
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "checkpoint": str(args.checkpoint),
                    "events": len(data),
                    "floor_source": floor_src,
                    "rows": rows,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
