"""Train every registered model under one budget and compare them on one held-out sample.

    python analysis/compare.py events.root --steps 1500 --batch-size 256 --preset small \\
        --out analysis/comparison --work-dir runs/compare

For each model (default: all of ``hepvld.models.MODELS``) this runs the training CLI
(``python -m hepvld.train``: same file, same split, same seed, same number of optimiser
steps and batch size; LDM spends half the steps on its VAE), then unfolds the test split
of :func:`hepvld.data.split_by_event` (fractions :data:`hepvld.train.SPLIT`, never seen in
training) with :func:`hepvld.unfold` and hands all draws to
:func:`hepvld.evaluation.write_report`: Table 1 (six summed distances, bootstrap errors,
truth-vs-truth floor) beside the paper's, per-particle and per-component-type tables,
per-event scores, calibration and overlay plots. ``summary.md`` in ``--out`` holds
Table 1, the ranking and the training cost of each model. Trained runs in ``--work-dir``
are reused unless ``--retrain``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import awkward as ak
import numpy as np

import hepvld
from hepvld.cli._common import Parser
from hepvld.data import load_tensors, split_by_event
from hepvld.evaluation import Table, flatten_detector, write_report
from hepvld.io import open_events
from hepvld.models import MODELS
from hepvld.train import SPLIT
from hepvld.train import main as train_main
from hepvld.training.checkpoint import load_checkpoint

log = logging.getLogger("compare")

#: Registered name -> label used in the tables (the paper's spelling).
LABELS = {
    "vld": "VLD",
    "uc-vld": "UC-VLD",
    "c-vld": "C-VLD",
    "ldm": "LDM",
    "vdm": "VDM",
    "cvae": "CVAE",
    "cinn": "CINN",
}
METRICS = ("wasserstein", "energy", "ks", "kl64", "kl128", "kl256")


def train_model(name: str, files: Sequence[Path], run_dir: Path, args: argparse.Namespace) -> float:
    """Train ``name`` with the shared budget; returns wall seconds (0 if reused)."""
    if (run_dir / "checkpoints" / "latest.json").exists() and not args.retrain:
        log.info("%s: reusing %s", name, run_dir)
        return float(json.loads((run_dir / "wall_seconds.json").read_text())["train"])
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    argv = [
        *map(str, files),
        "--model",
        name,
        "--preset",
        args.preset,
        "--run-dir",
        str(run_dir),
        "--train.max-steps",
        str(args.steps),
        "--train.batch-size",
        str(args.batch_size),
        "--train.lr",
        str(args.lr),
        "--train.warmup-steps",
        str(args.warmup),
        "--train.ema-decay",
        str(args.ema_decay),
        "--train.seed",
        str(args.seed),
        "--train.checkpoint-every",
        str(args.steps),
        "--train.log-every",
        "100",
        "--train.num-threads",
        str(args.threads),
        "--train.device",
        "cpu",
    ]
    if name == "ldm":
        argv += ["--model.ldm-vae-steps", str(args.steps // 2)]
    t0 = time.perf_counter()
    train_main(argv)
    seconds = time.perf_counter() - t0
    (run_dir / "wall_seconds.json").write_text(json.dumps({"train": seconds}))
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--models", nargs="+", default=list(LABELS), choices=sorted(MODELS))
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=1500, help="optimiser steps per model")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--ema-decay", type=float, default=0.995)
    p.add_argument("--seed", type=int, default=0, help="training seed and unfolding seed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--draws", type=int, default=32, help="posterior draws per test event")
    p.add_argument("--sampler", default="dpmpp2m")
    p.add_argument("--sample-steps", type=int, default=100)
    p.add_argument("--n-boot", type=int, default=100)
    p.add_argument("--work-dir", type=Path, default=Path("runs/compare"))
    p.add_argument("--out", type=Path, default=Path("analysis/comparison"))
    p.add_argument("--retrain", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    import torch

    torch.set_num_threads(args.threads)
    tensors = load_tensors([str(f) for f in args.files], require_truth=True)
    train, _, test = split_by_event(tensors, SPLIT)
    log.info(
        "%d selected events: %d train, %d test (held out)", len(tensors), len(train), len(test)
    )
    events = open_events([str(f) for f in args.files])
    order = {int(e): i for i, e in enumerate(ak.to_numpy(events["event"]))}
    test_events = events[np.array([order[int(e)] for e in test.event])]

    draws: dict[str, np.ndarray] = {}
    cost: dict[str, dict[str, float]] = {}
    for name in args.models:
        run_dir = args.work_dir / name
        train_seconds = train_model(name, args.files, run_dir, args)
        model = hepvld.load(run_dir)
        t0 = time.perf_counter()
        out = hepvld.unfold(
            test_events,
            model=model,
            n_samples=args.draws,
            sampler=args.sampler,
            steps=args.sample_steps,
            seed=args.seed,
            raw=True,
            progress=False,
        )
        x = ak.to_numpy(out.raw).astype(np.float64)
        cost[name] = {
            "train_s": train_seconds,
            "unfold_s": time.perf_counter() - t0,
            "steps": float(load_checkpoint(run_dir).meta["step"]),
            "params": float(sum(p.numel() for p in model.model.parameters())),
        }
        if not np.isfinite(x).all():
            log.warning("%s: %d non-finite draws", name, int((~np.isfinite(x)).sum()))
        draws[LABELS[name]] = x

    report = write_report(
        args.out,
        test.targets.reshape(len(test), -1),
        draws,
        weights=test.weights,
        train_truth=train.targets.reshape(len(train), -1),
        train_features=flatten_detector(train.objects, train.mask, train.globals),
        test_features=flatten_detector(test.objects, test.mask, test.globals),
        n_boot=args.n_boot,
        plot_formats=("png",),
        seed=args.seed,
        title=f"hepvld model comparison ({len(test)} test events, {args.steps} steps each)",
    )
    write_summary(args, report, cost, n_train=len(train), n_test=len(test))
    log.info("report: %s", report.html)
    return 0


def write_summary(
    args: argparse.Namespace,
    report: object,
    cost: dict[str, dict[str, float]],
    *,
    n_train: int,
    n_test: int,
) -> None:
    """``summary.md``: settings, Table 1, the paper's Table 1, ranking, costs."""
    tables = report.tables  # type: ignore[attr-defined]
    lines = [
        "# Model comparison",
        "",
        f"{n_train} training / {n_test} test events, preset `{args.preset}`, {args.steps} steps "
        f"of batch {args.batch_size} per model (LDM: {args.steps // 2} VAE + {args.steps - args.steps // 2} "
        f"diffusion), lr {args.lr}, EMA {args.ema_decay}, seed {args.seed}; {args.draws} draws per "
        f"event with `{args.sampler}` at {args.sample_steps} steps.",
        "",
        "## Table 1 (this run)",
        "",
        tables["table1"].to_markdown(),
        "",
        "## Table 1 (paper, 1.3M events)",
        "",
        tables["paper_table1"].to_markdown(),
        "",
        "## Ranking (mean rank over the six summed distances)",
        "",
    ]
    ranking = rank_models(tables["table1"])
    lines += [f"{i + 1}. {label} (mean rank {r:.2f})" for i, (label, r) in enumerate(ranking)]
    lines += [
        "",
        "## Cost (this machine, CPU)",
        "",
        "| model | parameters | train s | unfold s |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {LABELS[n]} | {int(c['params'])} | {c['train_s']:.0f} | {c['unfold_s']:.1f} |"
        for n, c in cost.items()
    ]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")


def rank_models(table: Table) -> list[tuple[str, float]]:
    """Models sorted by their mean rank over the six summed distances of Table 1."""
    rows = {str(r[0]): r[1:] for r in table.rows}
    labels = [lab for lab in rows if lab in LABELS.values()]
    values = np.array([[_number(rows[lab][i]) for i in range(len(METRICS))] for lab in labels])
    ranks = values.argsort(0).argsort(0).mean(1) + 1
    return sorted(zip(labels, ranks.tolist()), key=lambda t: t[1])


def _number(cell: object) -> float:
    if isinstance(cell, (list, tuple)):
        return float(cell[0])
    return float(str(cell).split("±")[0])


if __name__ == "__main__":
    raise SystemExit(main())
