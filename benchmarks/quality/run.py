"""The quality benchmark (issue 12): train at a fixed budget, unfold the whole test file, one table.

    make quality-data                       # or HEPVLD_QUALITY_DIR=/path make quality-data
    python benchmarks/quality/run.py --model vld --budget-min 15
    python benchmarks/quality/run.py --model vld --budget-min 15 --target-parameterisation decay
    python benchmarks/quality/run.py --checkpoint runs/x --name x     # evaluate only

Samples (``benchmarks/quality/make_data.sh``, cached in ``$HEPVLD_QUALITY_DIR``, default
``.cache/quality``): ``train.root`` (40k selected events, seed 101), ``test.root`` (16k,
seed 202, an independent simulation), ``shifted175.root`` (16k, seed 303, m_t = 175 GeV, for
the prior-dependence study).

Recipe (fixed, every model): ``python -m hepvld.train train.root --preset small`` with batch
256, peak lr 1e-3, 100 warm-up steps, a cosine decay over 100k steps, so the budget
(``--train.max-time``, wall clock at one thread) stops the run near the peak lr
(``--decay-over steps``, the default; ``--decay-over time`` anneals to the minimum lr when
the budget is spent instead: measured worse at 14 minutes, see README.md), EMA 0.999, the
train CLI's split by event
number (80 % train, 10 % validation, 10 % unused). The whole test
file is then unfolded with ``hepvld.unfold`` (``--n-samples`` draws per event,
``--sampler``/``--steps``) and scored by :func:`metrics.quality_metrics` against the test
truth, with the training truth as the floor's independent sample and the no-information
reference. Writes ``<out>/<name>.json`` and prints the Markdown table
(:func:`metrics.format_markdown`); ``--table`` merges several JSON results into one table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from hepvld.cli._common import Parser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import format_markdown, quality_metrics

log = logging.getLogger("quality")

RECIPE = {"batch-size": 256, "lr": 1e-3, "warmup-steps": 100, "max-steps": 100_000}


def data_dir() -> Path:
    """``$HEPVLD_QUALITY_DIR`` or ``.cache/quality`` (what ``make quality-data`` fills)."""
    return Path(os.environ.get("HEPVLD_QUALITY_DIR", ".cache/quality"))


def truth_and_events(path: Path) -> tuple[object, np.ndarray]:
    """Selected events of ``path`` and their parton truth ``(B, 55)`` float64."""
    from hepvld.features import select
    from hepvld.io import open_events
    from hepvld.targets import PARTON

    events = open_events(str(path))
    keep, _ = select(events)
    events = events[keep]
    return events, np.asarray(PARTON.flat(PARTON.build(events).values), np.float64)


def train(args: argparse.Namespace, run_dir: Path, train_file: Path) -> None:
    cmd = [sys.executable, "-m", "hepvld.train", str(train_file), "--model", args.model]
    cmd += ["--preset", args.preset, "--run-dir", str(run_dir)]
    cmd += [f"--train.{k}={v}" for k, v in RECIPE.items()]
    cmd += [f"--train.max-time={args.budget_min * 60:g}", "--train.num-threads=1"]
    cmd += [f"--train.decay-over={args.decay_over}"]
    if args.target_parameterisation:
        cmd += ["--target.parameterisation", args.target_parameterisation]
    cmd += args.train_args
    log.info("training: %s", " ".join(cmd))
    subprocess.run(cmd, check=True)


def main() -> None:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vld", help="model family (hepvld.train --model)")
    p.add_argument("--preset", default="small")
    p.add_argument("--budget-min", type=float, default=14.0, help="training wall clock, 1 thread")
    p.add_argument(
        "--decay-over",
        choices=("time", "steps"),
        default="steps",
        help="cosine over 100k steps (default: the run stops near the peak lr) or over the "
        "time budget",
    )
    p.add_argument("--target-parameterisation", choices=("components", "decay"), default=None)
    p.add_argument("--train-args", nargs=argparse.REMAINDER, default=[], help="more train options")
    p.add_argument("--checkpoint", type=Path, help="evaluate this run instead of training")
    p.add_argument("--name", help="result name (default: model and parameterisation)")
    p.add_argument("--models-dir", type=Path, help="run directories (default <data>/models)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/quality/results"))
    p.add_argument("--n-samples", type=int, default=16, help="draws per test event")
    p.add_argument("--sampler", default="ddpm")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--n-events", type=int, default=None, help="first N test events (default all)")
    p.add_argument("--n-boot", type=int, default=50)
    p.add_argument("--table", nargs="+", type=Path, help="only merge these JSON results")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.table:
        results = {f.stem: json.loads(f.read_text()) for f in args.table}
        print(format_markdown(results))
        return

    import torch

    torch.set_num_threads(1)
    import hepvld

    data = data_dir()
    name = args.name or f"{args.model}-{args.target_parameterisation or 'components'}"
    run_dir = args.checkpoint or (args.models_dir or data / "models") / name
    if args.checkpoint is None:
        train(args, run_dir, data / "train.root")
    model = hepvld.load(run_dir)
    _, train_truth = truth_and_events(data / "train.root")
    events, truth = truth_and_events(data / "test.root")
    if args.n_events:
        events, truth = events[: args.n_events], truth[: args.n_events]
    t0 = time.perf_counter()
    out = hepvld.unfold(
        events,
        model=model,
        n_samples=args.n_samples,
        sampler=args.sampler,
        steps=args.steps,
        seed=0,
        raw=True,
    )
    import awkward as ak

    draws = ak.to_numpy(out.raw).astype(np.float64)
    unfold_s = time.perf_counter() - t0
    res = quality_metrics(truth, draws, train_truth, n_boot=args.n_boot)
    res.update(
        checkpoint=str(run_dir),
        step=int(model.meta.get("step") or 0),
        target_options=model.meta.get("target_options", {}),
        sampler=args.sampler,
        steps=args.steps,
        unfold_seconds=round(unfold_s, 1),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(res, indent=1))
    print(format_markdown({name: res}))


if __name__ == "__main__":
    main()
