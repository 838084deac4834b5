"""The paper study (issue #4 §5): Table 1 of Shmakov et al. (2023) on our own generated data.

    python analysis/paper_study.py --n-train 5000 --n-test 1500 --train-time 600 \\
        --models vld uc-vld --output study/

Steps, each skippable:

1. **sample** — generate a training sample with Pythia (``--n-train`` selected events,
   ``--seed``), or take ``--train-sample FILE``;
2. **train** — train every model of ``--models`` registered in ``hepvld.models.MODELS``
   (others are skipped with a warning) with ``python -m hepvld.train`` for
   ``--train-time`` seconds each, or reuse runs given as ``--runs NAME=DIR``;
3. **held-out sample** — generate an independent sample (``--n-test`` events, seed
   ``--seed + 1``), or take ``--test-sample FILE``; evaluate on all its events;
4. **evaluate** — ``python -m hepvld.evaluate`` (all tables, figures, HTML summary in
   ``OUTPUT/report``) with the training split of the training sample as the
   no-information reference and truth floor;
5. **Table 1** — our summed distances (± bootstrap error), the truth floor of our sample
   size and the paper's numbers side by side in ``OUTPUT/paper_study.md`` (and ``.json``),
   also printed.

The paper's numbers come from 1.3M test events and networks trained for days on GPUs;
ours from a few thousand events and minutes of CPU, so the floor row says what our sample
size allows: a model can't be told from the truth below it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hepvld.cli._common import Parser

__all__ = ["comparison_table", "main", "paper_name"]

log = logging.getLogger("paper_study")

#: Our registered model names -> the paper's spelling in its Table 1.
_PAPER_NAMES = {
    "vld": "VLD",
    "uc-vld": "UC-VLD",
    "c-vld": "C-VLD",
    "ldm": "LDM",
    "vdm": "VDM",
    "cvae": "CVAE",
    "cinn": "CINN",
}


def paper_name(model: str) -> str:
    """The paper's name of a registered model (``uc-vld`` -> ``UC-VLD``)."""
    return _PAPER_NAMES.get(model, model.upper())


def _generate(path: Path, n: int, seed: int, workers: int, mpi: bool) -> Path:
    from hepvld.generate import generate

    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary = generate(path, n, seed=seed, workers=workers, mpi=mpi, progress=False)
    log.info(
        "generated %s (%d events, seed %d) in %.0f s: %s",
        path,
        n,
        seed,
        time.perf_counter() - t0,
        summary,
    )
    return path


def _train(model: str, sample: Path, run_dir: Path, args: argparse.Namespace) -> Path:
    from hepvld.train import main as train_main

    argv = [
        str(sample),
        "--model",
        model,
        "--run-dir",
        str(run_dir),
        "--preset",
        args.preset,
        "--train.max-time",
        str(args.train_time),
        "--train.max-steps",
        str(args.train_steps),
        "--train.batch-size",
        str(args.batch_size),
        "--train.warmup-steps",
        str(args.warmup_steps),
        "--train.val-every",
        "500",
        "--train.checkpoint-every",
        "1000",
        "--train.log-every",
        "250",
        *args.train_args,
    ]
    if args.threads:
        argv += ["--train.num-threads", str(args.threads)]
    log.info("training %s: python -m hepvld.train %s", model, " ".join(argv))
    t0 = time.perf_counter()
    if train_main(argv) != 0:
        raise SystemExit(f"training {model} failed")
    log.info("trained %s in %.0f s", model, time.perf_counter() - t0)
    return run_dir


def comparison_table(results: dict[str, Any], models: Sequence[str]) -> str:
    """Markdown: our Table 1 rows (value ± error), the floor, and the paper's rows.

    Parameters
    ----------
    results
        ``results.json`` written by ``python -m hepvld.evaluate``.
    models
        Report names of our models, in order.
    """
    from hepvld.evaluation import paper_table1
    from hepvld.evaluation.distances import DISTANCES
    from hepvld.evaluation.tables import format_value

    table = results["tables"]["table1"]
    header = table["columns"]
    lines = [
        "| model | source | " + " | ".join(header[1:]) + " |",
        "|---|---|" + "---:|" * (len(header) - 1),
    ]

    def cell(c: Any) -> str:
        return format_value(c["value"], c["error"]) if isinstance(c, dict) else str(c)

    ours = {row[0]: row for row in table["rows"]}
    paper = paper_table1()
    for name in models:
        row = ours[name]
        lines.append(f"| {name} | ours | " + " | ".join(cell(c) for c in row[1:]) + " |")
        if name in paper:
            lines.append(
                f"| {name} | paper | "
                + " | ".join(f"{paper[name][k]:.2f}" for k in DISTANCES)
                + " |"
            )
    floor = table["rows"][-1]
    lines.append(f"| {floor[0]} | ours | " + " | ".join(cell(c) for c in floor[1:]) + " |")
    for name, vals in paper.items():
        if name not in models:
            lines.append(
                f"| {name} | paper | " + " | ".join(f"{vals[k]:.2f}" for k in DISTANCES) + " |"
            )
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--output", "-o", type=Path, default=Path("study"), help="work and output directory"
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=["vld", "uc-vld"],
        help="registered models to train and compare",
    )
    p.add_argument(
        "--runs",
        nargs="*",
        default=[],
        metavar="NAME=DIR",
        help="reuse trained runs instead of training (NAME a registered model)",
    )
    p.add_argument(
        "--train-sample", type=Path, default=None, help="training ROOT file (else generated)"
    )
    p.add_argument(
        "--test-sample", type=Path, default=None, help="held-out ROOT file (else generated)"
    )
    p.add_argument(
        "--n-train", type=int, default=5000, help="selected events generated for training"
    )
    p.add_argument(
        "--n-test", type=int, default=1500, help="selected events generated for evaluation"
    )
    p.add_argument("--seed", type=int, default=3, help="generator seed (held-out sample: seed + 1)")
    p.add_argument("--workers", type=int, default=2, help="generator processes")
    p.add_argument("--mpi", action="store_true", help="multi-parton interactions on (slower)")
    p.add_argument("--preset", default="small", help="model size preset of hepvld.train")
    p.add_argument(
        "--train-time", type=float, default=600.0, help="training wall-clock seconds per model"
    )
    p.add_argument(
        "--train-steps", type=int, default=4000, help="maximum optimiser steps per model"
    )
    p.add_argument("--batch-size", type=int, default=128, help="training batch size")
    p.add_argument("--warmup-steps", type=int, default=200, help="learning-rate warm-up steps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for training")
    p.add_argument(
        "--train-args",
        nargs=argparse.REMAINDER,
        default=[],
        help="further options for hepvld.train (must come last)",
    )
    p.add_argument("--n-samples", type=int, default=20, help="posterior draws per test event")
    p.add_argument("--sampler", default="dpmpp2m", help="diffusion sampler of the evaluation")
    p.add_argument("--steps", type=int, default=50, help="sampler steps of the evaluation")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap replicates")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the study; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from hepvld.models import MODELS

    t_start = time.perf_counter()
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Path] = {}
    for item in args.runs:
        name, sep, run = item.partition("=")
        if not sep:
            raise SystemExit(f"--runs expects NAME=DIR, got {item!r}")
        runs[name] = Path(run)
    models = [m for m in args.models if m in MODELS or m in runs]
    for m in sorted(set(args.models) - set(models)):
        log.warning(
            "model %r is not registered in hepvld.models.MODELS (%s): skipped", m, sorted(MODELS)
        )
    if not models:
        raise SystemExit("no model to study")

    train_sample = args.train_sample
    to_train = [m for m in models if m not in runs]
    if to_train and train_sample is None:
        train_sample = _generate(
            out / "train.root", args.n_train, args.seed, args.workers, args.mpi
        )
    for m in to_train:
        runs[m] = _train(m, train_sample, out / f"run-{m}", args)
    test_sample = args.test_sample or _generate(
        out / "test.root", args.n_test, args.seed + 1, args.workers, args.mpi
    )

    from hepvld.evaluate import main as evaluate_main

    names = [paper_name(m) for m in models]
    eval_argv = [
        "--models",
        *[f"{paper_name(m)}={runs[m]}" for m in models],
        "--data",
        str(test_sample),
        "--split",
        "all",
        "--output",
        str(out / "report"),
        "--n-samples",
        str(args.n_samples),
        "--sampler",
        args.sampler,
        "--steps",
        str(args.steps),
        "--n-boot",
        str(args.n_boot),
        "--title",
        f"hepvld paper study: {', '.join(names)}",
    ]
    if args.no_plots:
        eval_argv.append("--no-plots")
    log.info("python -m hepvld.evaluate %s", " ".join(eval_argv))
    if evaluate_main(eval_argv) != 0:
        raise SystemExit("evaluation failed")

    results = json.loads((out / "report" / "results.json").read_text(encoding="utf-8"))
    md = f"Table 1 on our data ({results['meta']})\n\n" + comparison_table(results, names)
    (out / "paper_study.md").write_text(md, encoding="utf-8")
    (out / "paper_study.json").write_text(
        json.dumps(
            {
                "models": dict(zip(names, [str(runs[m]) for m in models], strict=True)),
                "train_sample": str(train_sample) if train_sample else None,
                "test_sample": str(test_sample),
                "settings": {
                    k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                },
                "table1": results["tables"]["table1"],
                "summary": results["summary"],
                "wall_s": time.perf_counter() - t_start,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    print(md)
    print(f"summary: {out / 'report' / 'report.html'}; table: {out / 'paper_study.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
