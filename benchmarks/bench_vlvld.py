"""VL-VLD at particle level: quality on held-out events, multiplicity heads, cost per draw.

Train (at most 15 minutes wall at 1 thread; the command this script runs with
``--train-first``, plus ``--model.vlvld-candidate-weight W`` for ``--candidate-weight W``)::

    /work/notes/heavy 1 python -m hepvld.train /work/cache/quality/train.root \\
        --model c-vl-vld --preset small --run-dir RUN --train.max-steps 1050 \\
        --train.max-time 900 --train.batch-size 256 --train.lr 1e-3 \\
        --train.warmup-steps 100 --train.num-threads 1 --train.seed 0

Evaluate (``/work/notes/heavy 1 python benchmarks/bench_vlvld.py --run-dir RUN``) on
``--test`` (independent seed), events passing both the detector and the particle-level
selection:

* multiplicity distribution (objects, jets, b-jets, leptons) per bin, one draw per event,
  vs the truth, with the Poisson error of both counts (pull per bin);
* the fraction of draws inside the phase space: the event cuts on the drawn types
  (exactly one lepton, >= 4 jets, >= 2 b-jets) and the full detector phase space (object
  cuts pT > 25 GeV, |eta| < 2.5 too, ``ParticleLevel.fiducial``); with ``--independent``
  also the b-jet / jet multiplicity and phase-space fractions of the same network typing
  each slot by its own argmax (``vlvld_types = "independent"``, the earlier behaviour);
* the type-composition head (``vlvld_types = "joint"``): held-out mean log-likelihood of
  the true ``(n_b, n_e, n_mu)`` given the true ``n``;
* the two multiplicity heads (rounded Gamma, categorical): held-out mean log-likelihood
  and the predicted multiplicity distribution (sum over events of ``p(n | y)``) vs truth;
* W1 of each feature of the four leading objects and of the event vector, one draw per
  event, vs its truth floor: W1 between the test truth and the same number of training
  truth events (independent generator seed); the same for the two leading b-jets, the
  two leading light jets, the lepton and the pseudo-top candidates' mass and pT;
* CRPS skill per object (``1 - CRPS / CRPS_ref``, fair CRPS, ``--draws`` draws per event
  on ``--crps-events`` events; reference: random training events, the no-information
  posterior);
* pseudo-top t_had / t_lep (W_had / W_lep) mass peak (parabolic mode of 5 GeV bins in
  100–250 GeV; 2.5 GeV bins in 40–120 GeV) and width (half the 16–84 % interval inside
  that window), draws vs truth;
* cost per draw of VL-VLD vs the fixed-length VLD (same preset, parton level) in one
  process, and the training step time of both (ratios).

Writes a JSON summary (``--out``) and prints tables.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hepvld.cli._common import Parser

TRAIN_COMMAND = [
    "-m",
    "hepvld.train",
    "/work/cache/quality/train.root",
    "--model",
    "c-vl-vld",
    "--preset",
    "small",
    "--train.max-steps",
    "1050",
    "--train.max-time",
    "900",
    "--train.batch-size",
    "256",
    "--train.lr",
    "1e-3",
    "--train.warmup-steps",
    "100",
    "--train.num-threads",
    "1",
    "--train.seed",
    "0",
]

RANKED = ("obj1", "obj2", "obj3", "obj4")
KINDS = ("pt", "eta", "phi", "mass", "px", "py", "pz", "logE")
EVENT_COLUMNS = ("met", "met_phi", "nu_px", "nu_py", "nu_pz", "nu_E")
TYPED = ("bjet1", "bjet2", "light1", "light2", "lepton")
PSEUDO_TOP = [f"{p}/{k}" for p in ("t_had", "t_lep", "W_had", "W_lep") for k in ("mass", "pt")]


def _unfold(
    net: Any, det: Any, idx: np.ndarray, n_draws: int, seed: int, steps: int, chunk: int = 512
) -> Any:
    """Physical draws ``values (B, S, K, H)``, ``mask (B, S, K)`` of events ``idx``, in
    chunks of ``chunk`` events (noise keyed per event: :func:`hepvld.api.event_noise`)."""
    from hepvld.api import event_noise
    from hepvld.diffusion import SamplerSpec

    spec = SamplerSpec("dpmpp2m", steps=steps)
    values, masks = [], []
    for start in range(0, len(idx), chunk):
        sl = idx[start : start + chunk]
        noise = event_noise(seed, det.event[sl].astype(np.uint64), (n_draws, *net.noise_shape))
        d = net.unfold(
            torch.as_tensor(det.objects[sl]),
            torch.as_tensor(det.mask[sl]),
            torch.as_tensor(det.globals[sl]),
            n_samples=n_draws,
            sampler=spec,
            noise=noise,
        )
        values.append(d.values.numpy())
        masks.append(d.mask.numpy())
    return np.concatenate(values), np.concatenate(masks)


def _peak_width(x: np.ndarray, lo: float, hi: float, width: float) -> tuple[float, float]:
    """Parabolic mode of ``width``-GeV bins in ``[lo, hi]`` and half the 16-84 % interval
    of the values inside that window."""
    x = x[np.isfinite(x) & (x > lo) & (x < hi)]
    if len(x) < 50:
        return float("nan"), float("nan")
    counts, edges = np.histogram(x, bins=np.arange(lo, hi + 0.5 * width, width))
    i = int(np.clip(np.argmax(counts), 1, len(counts) - 2))
    a, b, c = counts[i - 1 : i + 2].astype(float)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    centre = 0.5 * (edges[i] + edges[i + 1]) + width * float(np.clip(shift, -1, 1))
    q16, q84 = np.quantile(x, [0.16, 0.84])
    return float(centre), float(0.5 * (q84 - q16))


def _hist_table(draw_n: np.ndarray, true_n: np.ndarray) -> list[dict[str, float]]:
    top = int(max(draw_n.max(), true_n.max()))
    rows = []
    for k in range(top + 1):
        d, t = int((draw_n == k).sum()), int((true_n == k).sum())
        if d == 0 and t == 0:
            continue
        err = float(np.sqrt(d + t))
        rows.append({"n": k, "draws": d, "truth": t, "pull": (d - t) / err if err else 0.0})
    return rows


def _time_sampling(
    net: Any, det: Any, steps: int, repeats: int = 3, idx: np.ndarray | None = None
) -> float:
    """Seconds per draw (64 events x 4 draws, ``steps`` dpmpp2m steps), best of repeats;
    the first 64 events of ``idx`` (default: of ``det``)."""
    from hepvld.diffusion import SamplerSpec

    spec = SamplerSpec("dpmpp2m", steps=steps)
    sl = np.arange(64) if idx is None else np.asarray(idx)[:64]
    args = (torch.as_tensor(det.objects[sl]), torch.as_tensor(det.mask[sl]))
    glob = torch.as_tensor(det.globals[sl])
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        net.unfold(
            *args, glob, n_samples=4, sampler=spec, generator=torch.Generator().manual_seed(r)
        )
        best = min(best, time.perf_counter() - t0)
    return best / (len(sl) * 4)


def _time_train_step(net: Any, batch: dict[str, torch.Tensor], repeats: int = 5) -> float:
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        out = net.loss(batch, generator=torch.Generator().manual_seed(r))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        best = min(best, time.perf_counter() - t0)
    net.eval()
    return best


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    import hepvld
    from hepvld.data import load_tensors
    from hepvld.evaluation.distances import wasserstein
    from hepvld.evaluation.scores import crps_fair
    from hepvld.models import build_model, model_config
    from hepvld.targets.particle_output import feature_labels

    torch.set_num_threads(1)
    um = hepvld.load(args.run_dir)
    net = um.model.eval()
    level = um.level
    test = load_tensors(args.test, level=level, max_jets=um.max_jets, entry_stop=args.test_entries)
    train = load_tensors(
        args.train, level=level, max_jets=um.max_jets, entry_stop=args.floor_entries
    )
    keep = np.flatnonzero(test.pass_truth & test.pass_detector)[: args.events]
    keep_train = np.flatnonzero(train.pass_truth & train.pass_detector)
    n = len(keep)
    labels = feature_labels(level)
    col = {name: i for i, name in enumerate(labels)}
    out: dict[str, Any] = {
        "run_dir": str(args.run_dir),
        "test_events": n,
        "model": um.meta.get("model"),
    }

    out["types"] = getattr(net, "types", "independent")
    truth_v, truth_m = test.targets[keep], test.target_mask[keep]
    t0 = time.perf_counter()
    draws_v, draws_m = _unfold(net, test, keep, 1, args.seed, args.steps)
    out["sampling_seconds_1_draw"] = time.perf_counter() - t0
    out["sampling_draws_per_second"] = n / out["sampling_seconds_1_draw"]
    f_draw = level.feature_table(draws_v[:, 0], draws_m[:, 0])
    f_true = level.feature_table(truth_v, truth_m)
    floor_idx = keep_train[:n]
    if len(floor_idx) < n:
        raise SystemExit(f"only {len(floor_idx)} training events for a floor of {n}")
    f_floor = level.feature_table(train.targets[floor_idx], train.target_mask[floor_idx])

    # multiplicities
    mult = {}
    for name in ("n_objects", "n_jets", "n_bjets", "n_leptons"):
        if name in col:
            rows = _hist_table(f_draw[:, col[name]].astype(int), f_true[:, col[name]].astype(int))
            mult[name] = {
                "bins": rows,
                "chi2": float(sum(r["pull"] ** 2 for r in rows)),
                "ndf": len(rows),
                "max_abs_pull": float(max(abs(r["pull"]) for r in rows)),
            }
    out["multiplicity"] = mult
    out["phase_space"] = {
        "draws": _phase_space_fractions(level, draws_v[:, 0], draws_m[:, 0], f_draw, col),
        "truth": _phase_space_fractions(level, truth_v, truth_m, f_true, col),
    }
    if args.independent and out["types"] == "joint":
        net.types = "independent"
        try:
            iv, im = _unfold(net, test, keep, 1, args.seed, args.steps)
        finally:
            net.types = "joint"
        f_ind = level.feature_table(iv[:, 0], im[:, 0])
        ind: dict[str, Any] = {
            "phase_space": _phase_space_fractions(level, iv[:, 0], im[:, 0], f_ind, col)
        }
        for name in ("n_jets", "n_bjets"):
            rows = _hist_table(f_ind[:, col[name]].astype(int), f_true[:, col[name]].astype(int))
            ind[name] = {"chi2": float(sum(r["pull"] ** 2 for r in rows)), "ndf": len(rows)}
        ind["pseudo_top_valid"] = float(np.isfinite(f_ind[:, col["t_had/mass"]]).mean())
        out["independent_typing"] = ind

    # the two heads on the held-out events
    heads: dict[str, Any] = {}
    with torch.no_grad():
        zs = []
        for start in range(0, n, 1024):
            sl = keep[start : start + 1024]
            o, g = net.detector_norm(
                torch.as_tensor(test.objects[sl]),
                torch.as_tensor(test.mask[sl]),
                torch.as_tensor(test.globals[sl]),
            )
            zs.append(net.condition(o, torch.as_tensor(test.mask[sl]), g).event)
        z_y = torch.cat(zs)
        n_true = torch.as_tensor(truth_m[:, 1:].sum(-1))
        for kind in net.multiplicity:
            lp = net.multiplicity_log_pmf(z_y, kind)
            expected = lp.exp().sum(0).numpy()
            observed = np.bincount(n_true.numpy(), minlength=len(expected))
            # Pearson chi2 over bins with an expectation of at least 1 event
            sel = expected >= 1.0
            chi2 = float((((observed - expected) ** 2) / expected)[sel].sum())
            heads[kind] = {
                "mean_log_likelihood": float(lp.gather(-1, n_true[:, None]).mean()),
                "expected_vs_truth_chi2": chi2,
                "bins": int(sel.sum()),
                "truth_outside_bins": int(observed[~sel].sum()),
                "expected": [round(float(e), 1) for e in expected],
                "truth": [int(o) for o in observed],
            }
        if hasattr(net, "composition_log_pmf"):
            counts = net.type_counts(torch.as_tensor(truth_v), torch.as_tensor(truth_m))
            lp = net.composition_log_pmf(z_y, n_true, restricted=False)
            target = net.composition.index(counts)
            heads["composition"] = {
                "mean_log_likelihood": float(lp.gather(-1, target[:, None]).mean()),
                "expected_n_bjets": [
                    round(float(e), 1)
                    for e in torch.zeros(net.n_slots)
                    .index_add_(
                        0, net.composition.counts(torch.arange(lp.shape[-1]))[:, 0], lp.exp().sum(0)
                    )
                    .tolist()
                ],
            }
    out["multiplicity_heads"] = heads

    # W1 of leading objects and the event vector vs the truth floor; the same by type
    # (leading b-jets, light jets, the lepton) and of the pseudo-top candidates
    def w1_table(names: list[str]) -> dict[str, dict[str, float]]:
        table = {}
        for name in names:
            i = col[name]
            a, b, c = f_draw[:, i], f_true[:, i], f_floor[:, i]
            a, b, c = a[np.isfinite(a)], b[np.isfinite(b)], c[np.isfinite(c)]
            model_w1, floor_w1 = float(wasserstein(a, b)), float(wasserstein(c, b))
            ratio = model_w1 / max(floor_w1, 1e-12)
            table[name] = {"w1": model_w1, "floor": floor_w1, "ratio": ratio}
        return table

    out["w1"] = w1_table([f"{o}/{k}" for o in RANKED for k in KINDS] + list(EVENT_COLUMNS))
    out["w1_by_type"] = w1_table([f"{o}/{k}" for o in TYPED for k in KINDS] + PSEUDO_TOP)

    # CRPS skill per object
    sub = keep[: args.crps_events]
    cv, cm = _unfold(net, test, sub, args.draws, args.seed + 1, args.steps)
    s = args.draws
    f_cd = level.feature_table(cv, cm)  # (B, S, C)
    f_ct = f_true[: len(sub)]
    rng = np.random.default_rng(0)
    ref_idx = rng.choice(keep_train, size=(len(sub), s))
    f_ref = level.feature_table(train.targets[ref_idx], train.target_mask[ref_idx])
    crps = {}
    for obj in RANKED:
        skills = {}
        for k in ("pt", "eta", "phi", "mass", "logE"):
            i = col[f"{obj}/{k}"]
            d, t, r = f_cd[..., i], f_ct[:, i], f_ref[..., i]
            ok = np.isfinite(t) & np.isfinite(d).all(1) & np.isfinite(r).all(1)
            if ok.sum() < 50:
                continue
            model_crps = crps_fair(d[ok][..., None], t[ok][:, None])[:, 0].mean()
            ref_crps = crps_fair(r[ok][..., None], t[ok][:, None])[:, 0].mean()
            skills[k] = {"skill": float(1 - model_crps / ref_crps), "events": int(ok.sum())}
        crps[obj] = skills
    out["crps_skill"] = crps

    # pseudo-top masses
    tops = {}
    for p in ("t_had", "t_lep", "W_had", "W_lep"):
        name = f"{p}/mass"
        if name in col:
            window = (100.0, 250.0, 5.0) if p.startswith("t") else (40.0, 120.0, 2.5)
            pd, wd = _peak_width(f_draw[:, col[name]], *window)
            pt_, wt = _peak_width(f_true[:, col[name]], *window)
            tops[p] = {
                "peak_draws": pd,
                "peak_truth": pt_,
                "width_draws": wd,
                "width_truth": wt,
                "valid_draws": float(np.isfinite(f_draw[:, col[name]]).mean()),
                "valid_truth": float(np.isfinite(f_true[:, col[name]]).mean()),
            }
    out["pseudo_top"] = tops

    # cost per draw and per training step vs the fixed-length VLD (same preset, 1 thread)
    cfg = model_config("small")
    torch.manual_seed(0)
    vld = build_model(
        "vld", cfg, object_features=test.objects.shape[-1], global_features=test.globals.shape[-1]
    ).eval()
    sub_det = test.subset(keep[:64])
    out["seconds_per_draw"] = {
        "vl-vld": _time_sampling(net, sub_det, args.steps),
        "vld": _time_sampling(vld, sub_det, args.steps),
    }
    out["seconds_per_draw"]["ratio"] = (
        out["seconds_per_draw"]["vl-vld"] / out["seconds_per_draw"]["vld"]
    )
    b = min(256, n)  # the figure's name keeps "b256": the benchmark's test set has > 256
    gen = torch.Generator().manual_seed(0)
    objects, mask = torch.as_tensor(test.objects[keep[:b]]), torch.as_tensor(test.mask[keep[:b]])
    glob = torch.as_tensor(test.globals[keep[:b]])
    batch = {"objects": objects, "mask": mask, "globals": glob}
    vl_batch = {
        **batch,
        "targets": torch.randn(b, *net.target_shape, generator=gen),
        "target_mask": torch.as_tensor(truth_m[:b]),
        "candidate_slots": torch.as_tensor(level.candidate_slots(truth_v[:b], truth_m[:b])),
    }
    vld_batch = {**batch, "targets": torch.randn(b, 11, 5, generator=gen)}
    t_vl, t_vld = _time_train_step(net, vl_batch), _time_train_step(vld, vld_batch)
    out["train_step_seconds_b256"] = {"vl-vld": t_vl, "vld": t_vld, "ratio": t_vl / t_vld}
    out["train_events_per_second"] = {"vl-vld": b / t_vl, "vld": b / t_vld}
    return out


def _phase_space_fractions(
    level: Any, values: np.ndarray, mask: np.ndarray, table: np.ndarray, col: dict[str, int]
) -> dict[str, float]:
    """Fractions of rows passing the event cuts on their types (one lepton, >= 4 jets,
    >= 2 b-jets), the full detector phase space (object cuts too) and with a pseudo-top."""
    n_lep, n_jets, n_b = (table[:, col[c]] for c in ("n_leptons", "n_jets", "n_bjets"))
    _, _, passed = level.fiducial(values, mask)
    return {
        "event_cuts_on_types": float(((n_lep == 1) & (n_jets >= 4) & (n_b >= 2)).mean()),
        "one_lepton": float((n_lep == 1).mean()),
        "at_least_4_jets": float((n_jets >= 4).mean()),
        "at_least_2_bjets": float((n_b >= 2).mean()),
        "detector_phase_space": float(np.mean(passed)),
        "valid_pseudo_top": float(np.isfinite(table[:, col["t_had/mass"]]).mean()),
    }


def _print(out: dict[str, Any]) -> None:
    print(
        f"test events: {out['test_events']}  model: {out['model']}  "
        f"types: {out.get('types', 'independent')}"
    )
    m = out["multiplicity"]
    ps = out["phase_space"]["draws"]
    print(
        f"SUMMARY b-jet multiplicity chi2/ndf = {m['n_bjets']['chi2']:.1f}/{m['n_bjets']['ndf']}"
        f"  jet multiplicity chi2/ndf = {m['n_jets']['chi2']:.1f}/{m['n_jets']['ndf']}"
        f"  draws inside the phase space: event cuts on types {ps['event_cuts_on_types']:.4f},"
        f" detector phase space {ps['detector_phase_space']:.4f},"
        f" valid pseudo-top {ps['valid_pseudo_top']:.4f}"
    )
    for name, m in out["multiplicity"].items():
        print(
            f"\n{name}: chi2/ndf = {m['chi2']:.1f}/{m['ndf']}, max |pull| = {m['max_abs_pull']:.2f}"
        )
        for r in m["bins"]:
            print(
                f"  {r['n']:3d}  draws {r['draws']:6d}  truth {r['truth']:6d}  pull {r['pull']:+.2f}"
            )
    print("\nphase space (fractions of rows):")
    for who, fr in out["phase_space"].items():
        print(f"  {who:6s} " + "  ".join(f"{k} {v:.4f}" for k, v in fr.items()))
    if "independent_typing" in out:
        ind = out["independent_typing"]
        print(
            "\nsame network, slots typed independently (argmax): "
            f"b-jet chi2/ndf {ind['n_bjets']['chi2']:.1f}/{ind['n_bjets']['ndf']}, "
            f"jet chi2/ndf {ind['n_jets']['chi2']:.1f}/{ind['n_jets']['ndf']}, "
            + "  ".join(f"{k} {v:.4f}" for k, v in ind["phase_space"].items())
        )
    print("\nmultiplicity heads (held-out):")
    for kind, h in out["multiplicity_heads"].items():
        if kind == "composition":
            print(
                f"  composition  mean log L = {h['mean_log_likelihood']:.4f} (true n_b, n_e, "
                f"n_mu | true n); expected n_b counts {h['expected_n_bjets']}"
            )
            continue
        print(
            f"  {kind:12s} mean log L = {h['mean_log_likelihood']:.4f}  "
            f"chi2(expected vs truth) = {h['expected_vs_truth_chi2']:.1f} / {h['bins']} bins"
        )
    for key, title in (("w1", ""), ("w1_by_type", ", by type and of the pseudo-top candidates")):
        print(f"\nW1 vs truth floor{title}:")
        for name, w in out[key].items():
            print(
                f"  {name:14s} W1 {w['w1']:10.4f}  floor {w['floor']:10.4f}  ratio {w['ratio']:6.2f}"
            )
    print("\nCRPS skill per object:")
    for obj, sk in out["crps_skill"].items():
        print("  " + obj + "  " + "  ".join(f"{k} {v['skill']:+.3f}" for k, v in sk.items()))
    print("\npseudo-top masses (peak / width, GeV):")
    for p, t in out["pseudo_top"].items():
        print(
            f"  {p:6s} draws {t['peak_draws']:7.1f} / {t['width_draws']:6.1f}   truth "
            f"{t['peak_truth']:7.1f} / {t['width_truth']:6.1f}   valid {t['valid_draws']:.3f} "
            f"vs {t['valid_truth']:.3f}"
        )
    print(f"\nseconds per draw: {out['seconds_per_draw']}")
    print(f"train step (B=256): {out['train_step_seconds_b256']}")
    print(f"sampling: {out['sampling_draws_per_second']:.1f} draws/s (1 thread)")


def main(argv: list[str] | None = None) -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--train-first", action="store_true", help="train the run first (15 min)")
    p.add_argument("--train", type=Path, default=Path("/work/cache/quality/train.root"))
    p.add_argument("--test", type=Path, default=Path("/work/cache/quality/test.root"))
    p.add_argument("--events", type=int, default=16000)
    p.add_argument("--floor-entries", type=int, default=None)
    p.add_argument("--test-entries", type=int, default=None)
    p.add_argument("--crps-events", type=int, default=1000)
    p.add_argument("--draws", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--candidate-weight",
        type=float,
        default=None,
        help="with --train-first: --model.vlvld-candidate-weight of the training",
    )
    p.add_argument(
        "--independent",
        action="store_true",
        help="also type the draws of a joint-typing network slot by slot (one more pass)",
    )
    args = p.parse_args(argv)
    if args.train_first:
        cmd = [sys.executable, *TRAIN_COMMAND, "--run-dir", str(args.run_dir)]
        if args.candidate_weight is not None:
            cmd += ["--model.vlvld-candidate-weight", str(args.candidate_weight)]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    out = evaluate(args)
    _print(out)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
