"""VL-VLD (particle level) vs the fixed-length C-VLD (parton level) on the same held-out
events: the top-quark candidates both levels define, and the cost per draw.

Both models unfold the same detector events of ``--test`` (``/work/cache/quality/test.root``,
an independent generator seed: held out for both runs): those that pass the detector
selection, the particle-level phase space (the set ``benchmarks/bench_vlvld.py`` evaluates,
13 723 events) and have a valid parton-level decay chain, matched by event number. For
each, ``--draws`` posterior draws per event (``dpmpp2m``, ``--steps`` steps, noise keyed per
``(seed, event number)``, 1 torch thread):

* VL-VLD: the particle-level pseudo-top of every draw (``hepvld/features/particle_pseudotop.py``,
  the K² assignment) against the same pseudo-top of the true particle level;
* C-VLD: the parton-level tops of every draw against the true partons.

Columns ``t_had`` / ``t_lep`` mass, pT, rapidity and ``ttbar`` mass, pT (the parton level's
tops are the hard-process ones by default: their tt̄ pT is identically 0 and t_had pT =
t_lep pT, so that column has no ratio there). Per column: W1 of the
draws (all ``S`` draws of every event pooled; draws without a pseudo-top left out) against
the event's truth, the truth floor (W1 between the test truth and as many training-file
truth events of the same level, ``--train``: an independent sample of the same size) and
the ratio W1 / floor; the fractions of draws / truth events with the quantity. The
particle-level and parton-level tops are different objects (the pseudo-top is built from
jets, the dressed lepton and the drawn neutrino): each level is compared with its own
truth, and the ratio to its own floor is what compares the two models.

Cost: seconds per draw of each model's ``unfold`` (64 events x 4 draws, ``--steps``
steps, best of 3 repeats, 1 thread; VL-VLD's includes its multiplicity and composition
draws, not the pseudo-top assignment, which is timed separately per draw), plus the wall
time of the whole sampling pass. Timings on a loaded machine are upper bounds; re-time with
``--timing-only`` on a quiet one.

Writes a JSON summary (``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_vlvld import _time_sampling, _unfold

from hepvld.cli._common import Parser

COLUMNS = (
    "t_had/mass",
    "t_had/pt",
    "t_had/rapidity",
    "t_lep/mass",
    "t_lep/pt",
    "t_lep/rapidity",
    "ttbar/mass",
    "ttbar/pt",
)


def _parton_columns(level: Any, values: np.ndarray) -> np.ndarray:
    """``(..., len(COLUMNS))`` of parton values ``(..., 11, 5)``: the tops' mass, pT,
        rapidity and the tt̄ mass, pT (the level's tops: with ``tops = "hard"``, the default,
    the hard-process tops, whose tt̄ pT is 0 in hepvld files)."""
    import awkward as ak

    rec = level.to_records(values)
    cols = []
    for name in COLUMNS:
        parton, quantity = name.split("/")
        cols.append(ak.to_numpy(getattr(rec[parton], quantity)).astype(np.float64))
    return np.stack(cols, axis=-1)


def _particle_columns(level: Any, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(..., len(COLUMNS))`` of particle-level values ``(..., K, 9)``: the pseudo-top
    columns of the level's feature table (NaN without a pseudo-top)."""
    from hepvld.targets.particle_output import feature_labels

    labels = feature_labels(level)
    table = level.feature_table(values, mask)
    return table[..., [labels.index(c) for c in COLUMNS]]


def _w1_rows(draws: np.ndarray, truth: np.ndarray, floor: np.ndarray) -> dict[str, Any]:
    """Per column: W1(draws, truth), W1(floor, truth), their ratio and the valid fractions
    (``draws (B, S, C)`` pooled over draws; ``truth``, ``floor (B', C)``)."""
    from hepvld.evaluation.distances import wasserstein

    out = {}
    for i, name in enumerate(COLUMNS):
        d = draws[..., i].ravel()
        t, f = truth[:, i], floor[:, i]
        d, t_ok, f = d[np.isfinite(d)], t[np.isfinite(t)], f[np.isfinite(f)]
        w1, fl = float(wasserstein(d, t_ok)), float(wasserstein(f, t_ok))
        # e.g. the hard-process tt̄ pT: 0 up to float rounding of the summed momenta
        constant = float(np.ptp(t_ok)) < 1e-3
        out[name] = {
            "w1": w1,
            "floor": fl,
            "ratio": float("nan") if constant else w1 / max(fl, 1e-12),
            "truth_constant": constant,
            "valid_draws": float(np.isfinite(draws[..., i]).mean()),
            "valid_truth": float(np.isfinite(truth[:, i]).mean()),
        }
    return out


def _select(args: argparse.Namespace) -> dict[str, Any]:
    """Both models, the test and training tensors of both levels, and the common events."""
    import hepvld
    from hepvld.data import load_tensors

    vl = hepvld.load(args.vlvld)
    fx = hepvld.load(args.fixed)
    if vl.level.fixed_multiplicity or not fx.level.fixed_multiplicity:
        raise SystemExit(
            f"--vlvld must be a variable-length model and --fixed a fixed-length one; "
            f"got {vl.name!r} ({vl.level.name}) and {fx.name!r} ({fx.level.name})"
        )
    stop = args.test_entries
    vl_test = load_tensors(args.test, level=vl.level, max_jets=vl.max_jets, entry_stop=stop)
    fx_test = load_tensors(args.test, level=fx.level, max_jets=fx.max_jets, entry_stop=stop)
    vl_keep = np.flatnonzero(vl_test.pass_truth & vl_test.pass_detector)
    common, i_vl, i_fx = np.intersect1d(
        vl_test.event[vl_keep], fx_test.event, assume_unique=True, return_indices=True
    )
    order = np.argsort(i_vl)[: args.events]  # file order, first --events
    return {
        "vl": vl,
        "fx": fx,
        "vl_test": vl_test,
        "fx_test": fx_test,
        "vl_idx": vl_keep[i_vl[order]],
        "fx_idx": i_fx[order],
        "events": common[order],
        "particle_selected": len(vl_keep),
    }


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from hepvld.data import load_tensors

    torch.set_num_threads(1)
    sel = _select(args)
    vl, fx = sel["vl"], sel["fx"]
    vl_net, fx_net = vl.model.eval(), fx.model.eval()
    vl_test, fx_test = sel["vl_test"], sel["fx_test"]
    vl_idx, fx_idx = sel["vl_idx"], sel["fx_idx"]
    n = len(vl_idx)
    assert np.array_equal(vl_test.event[vl_idx], fx_test.event[fx_idx])
    out: dict[str, Any] = {
        "vlvld": str(args.vlvld),
        "fixed": str(args.fixed),
        "models": {"vlvld": vl.name, "fixed": fx.name},
        "events": n,
        "particle_selected_events": sel["particle_selected"],
        "draws_per_event": args.draws,
        "steps": args.steps,
        "seed": args.seed,
    }
    if args.timing_only:
        out["seconds_per_draw"] = {
            "vlvld": _time_sampling(vl_net, vl_test, args.steps, idx=vl_idx),
            "fixed": _time_sampling(fx_net, fx_test, args.steps, idx=fx_idx),
        }
        return out

    # truth floors: as many training-file events of each level, selected like the test ones
    # (the same training events for both levels)
    vl_train = load_tensors(args.train, level=vl.level, max_jets=vl.max_jets)
    fx_train = load_tensors(args.train, level=fx.level, max_jets=fx.max_jets)
    vl_keep = np.flatnonzero(vl_train.pass_truth & vl_train.pass_detector)
    _, i_vl, i_fx = np.intersect1d(
        vl_train.event[vl_keep], fx_train.event, assume_unique=True, return_indices=True
    )
    order = np.argsort(i_vl)[:n]
    if len(order) < n:
        raise SystemExit(f"only {len(order)} training events for a floor of {n}")
    vl_floor, fx_floor = vl_keep[i_vl[order]], i_fx[order]

    t0 = time.perf_counter()
    vl_v, vl_m = _unfold(vl_net, vl_test, vl_idx, args.draws, args.seed, args.steps, chunk=256)
    t_vl = time.perf_counter() - t0
    t0 = time.perf_counter()
    vl_cols = _particle_columns(vl.level, vl_v, vl_m)
    t_pt = time.perf_counter() - t0
    t0 = time.perf_counter()
    fx_v, _ = _unfold(fx_net, fx_test, fx_idx, args.draws, args.seed, args.steps, chunk=256)
    t_fx = time.perf_counter() - t0
    fx_cols = _parton_columns(fx.level, fx_v)
    out["sampling_wall_seconds"] = {
        "vlvld": t_vl,
        "vlvld_pseudo_top": t_pt,
        "fixed": t_fx,
        "draws": n * args.draws,
    }

    vl_truth = _particle_columns(vl.level, vl_test.targets[vl_idx], vl_test.target_mask[vl_idx])
    vl_ref = _particle_columns(vl.level, vl_train.targets[vl_floor], vl_train.target_mask[vl_floor])
    fx_truth = _parton_columns(fx.level, fx_test.targets[fx_idx])
    fx_ref = _parton_columns(fx.level, fx_train.targets[fx_floor])
    out["w1"] = {
        "vlvld": _w1_rows(vl_cols, vl_truth, vl_ref),
        "fixed": _w1_rows(fx_cols, fx_truth, fx_ref),
    }
    out["seconds_per_draw"] = {
        "vlvld": _time_sampling(vl_net, vl_test, args.steps, idx=vl_idx),
        "fixed": _time_sampling(fx_net, fx_test, args.steps, idx=fx_idx),
        "vlvld_pseudo_top": t_pt / (n * args.draws),
    }
    return out


def _ratio(row: dict[str, Any]) -> str:
    if row.get("truth_constant") or row["floor"] < 1e-6:
        return "— (truth ≡ const)"
    return f"{row['ratio']:.2f}"


def _print(out: dict[str, Any]) -> None:
    print(
        f"events: {out['events']} (particle-level selected {out['particle_selected_events']}, "
        f"with a valid parton chain)  draws/event: {out['draws_per_event']}  "
        f"steps: {out['steps']}  models: {out['models']}"
    )
    if "w1" in out:
        print(
            "\n| quantity | VL-VLD W1 | floor | ratio | valid draws / truth "
            "| C-VLD W1 | floor | ratio |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name in COLUMNS:
            a, b = out["w1"]["vlvld"][name], out["w1"]["fixed"][name]
            print(
                f"| {name} | {a['w1']:.3f} | {a['floor']:.3f} | {_ratio(a)} "
                f"| {a['valid_draws']:.3f} / {a['valid_truth']:.3f} "
                f"| {b['w1']:.3f} | {b['floor']:.3f} | {_ratio(b)} |"
            )
        print(f"\nsampling wall seconds: {out['sampling_wall_seconds']}")
    print(f"seconds per draw (1 thread): {out['seconds_per_draw']}")


def main(argv: list[str] | None = None) -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--vlvld", type=Path, default=Path("/work/cache/vlvld/F30b"))
    p.add_argument(
        "--fixed", type=Path, default=Path("/work/cache/quality/models/c-vld-decay-steps")
    )
    p.add_argument("--train", type=Path, default=Path("/work/cache/quality/train.root"))
    p.add_argument("--test", type=Path, default=Path("/work/cache/quality/test.root"))
    p.add_argument("--events", type=int, default=16000, help="at most this many events")
    p.add_argument("--test-entries", type=int, default=None, help="read at most these entries")
    p.add_argument("--draws", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timing-only", action="store_true", help="only the seconds per draw")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--print", type=Path, default=None, help="only print the table of a JSON")
    args = p.parse_args(argv)
    if args.print is not None:
        _print(json.loads(args.print.read_text()))
        return 0
    out = evaluate(args)
    _print(out)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
