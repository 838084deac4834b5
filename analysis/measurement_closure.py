"""Closure of the measurement corrections: acceptance (fakes, efficiency) and backgrounds.

    python -m hepvld.generate -n 20000 --count generated --no-select --seed 404 -o noselect.root
    python -m hepvld.generate -n 200 --process single-top --seed 505 -o singletop.root
    python -m hepvld.unfold test.root -c RUN -o test.h5 --format hdf5 -S 8 --steps 20
    python -m hepvld.unfold singletop.root -c RUN -o singletop.h5 --format hdf5 -S 8 --steps 20
    python analysis/measurement_closure.py -c RUN --noselect noselect.root \\
        --signal test.root test.h5 --background singletop.root singletop.h5 -o closure

*Acceptance* (``--noselect``, signal generated without the selection; events split by
event-number parity into an efficiency half A and a closure half B): the detector-
selected events of B are unfolded, the parton-level fiducial cut
(:class:`hepvld.acceptance.FiducialCuts`) is applied per draw (fakes), the result is
divided by the efficiency measured on A, and compared with B's true fiducial spectrum
(all generated events of B inside the fiducial phase space). The alternative fake
correction from simulation is checked beside it: all of B's draws times the purity per
bin measured on A's unfolded events (``hepvld.acceptance.purity``), divided by the same
efficiency. The fake cut-flow gives the
unfolded and the true fake rate.

*Backgrounds* (``--signal`` and ``--background`` ROOT file + its unbinned result): the
background events are split by parity into a part mixed into the data (weighted to
``--background-fraction`` of the signal yield) and an independent template. *after*:
unfold S+B, subtract the unfolded template bin by bin; *before*: classifier signal
weights at detector level, weighted unfolded data. Both are compared with the signal's
true spectrum (and the unsubtracted mixture, to show the bias removed).

Writes ``closure.json``, ``closure.md`` and one PNG per observable and test.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hepvld.cli._common import Parser

log = logging.getLogger("measurement_closure")

EDGES = {
    "t_had_pt": np.array([0, 40, 80, 120, 160, 200, 250, 300, 400, 600.0]),
    "t_had_mass": np.linspace(150, 200, 11),
}
FNS = {"t_had_pt": lambda r: r.t_had.pt, "t_had_mass": lambda r: r.t_had.mass}


def _summary(name: str, test: Any, extra: dict | None = None) -> dict:
    return {
        "observable": name,
        "chi2": test.chi2,
        "ndf": test.ndf,
        "p_value": test.p_value,
        "max_abs_pull": float(np.nanmax(np.abs(test.pulls))),
        "unfolded": test.unfolded.nominal.tolist(),
        "stat": test.unfolded.stat.tolist(),
        "truth": test.truth.tolist(),
        **(extra or {}),
    }


def _plot(
    path: Path,
    edges: np.ndarray,
    curves: dict[str, tuple[np.ndarray, np.ndarray | None]],
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    c = 0.5 * (edges[1:] + edges[:-1])
    for label, (y, err) in curves.items():
        if err is None:
            ax.stairs(y, edges, label=label)
        else:
            ax.errorbar(c, y, err, fmt="o", ms=3, label=label)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(title.split(":")[0])
    ax.set_ylabel("events")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def acceptance(model: Any, path: Path, out: Path, n_samples: int, steps: int) -> dict:
    import hepvld
    from hepvld.acceptance import (
        FiducialCuts,
        correct,
        efficiency,
        fake_cutflow,
        fake_rates,
        purity,
    )
    from hepvld.features import select
    from hepvld.io import open_events
    from hepvld.io.unbinned import closure, histogram, poisson_replicas

    events = open_events(str(path))
    level = model.level
    truth = level.build(events, on_invalid="nan")
    valid = np.isfinite(truth.values).all(axis=(1, 2))
    rec = level.to_records(np.nan_to_num(truth.values), truth.mask)
    fid = FiducialCuts()(rec) & valid
    sel = np.asarray(select(events, require_truth=False)[0], bool)
    ev = ak.to_numpy(events["event"]).astype(np.int64)
    half_a, half_b = ev % 2 == 0, ev % 2 == 1
    res: dict[str, Any] = {
        "generated": len(ev),
        "selected": int(sel.sum()),
        "fiducial": int(fid.sum()),
    }
    b_sel = half_b & sel
    unf = hepvld.unfold(
        events[b_sel], model=model, n_samples=n_samples, steps=steps, progress=False
    )
    draws = ak.drop_none(unf, axis=0)
    passed = FiducialCuts()(draws)  # (B, S)
    a_sel = half_a & sel  # the purity's simulation: half A, as the efficiency's
    draws_a = ak.drop_none(
        hepvld.unfold(events[a_sel], model=model, n_samples=n_samples, steps=steps, progress=False),
        axis=0,
    )
    cf = fake_cutflow(passed, truth_fiducial=fid[b_sel])
    res["fake_cutflow"] = cf.to_dict()
    res["fake_rates"] = fake_rates(cf)
    res["efficiency"] = {}
    boot = poisson_replicas(ev[b_sel], 100, seed=7)
    for name, fn in FNS.items():
        e = EDGES[name]
        x_true = np.asarray(ak.to_numpy(fn(rec)), np.float64)
        eff = efficiency(x_true[half_a], fid[half_a], sel[half_a], e)
        x = np.asarray(ak.to_numpy(fn(draws)), np.float64)
        x_fid = np.where(passed, x, np.nan)  # fakes removed per draw
        h = histogram(x_fid, e, bootstrap=boot)
        fixed = correct(h, eff)
        target = x_true[half_b & fid]
        test = closure(fixed, target, truth_independent=True)
        raw = histogram(x, e, bootstrap=boot)  # neither correction
        # fakes from simulation instead of the draws: all draws x purity (half A) / eff
        pur = purity(np.asarray(ak.to_numpy(fn(draws_a)), np.float64), fid[a_sel], e)
        by_bin = closure(correct(raw, eff, purity=pur), target, truth_independent=True)
        # the same corrections on a perfect unfolding (the truth as the one draw): the
        # method's own closure, independent of the model
        oracle_x = np.where(fid[b_sel], x_true[b_sel], np.nan)[:, None]
        oracle = closure(
            correct(histogram(oracle_x, e, bootstrap=boot), eff), target, truth_independent=True
        )
        res["efficiency"][name] = _summary(
            name,
            test,
            {
                "efficiency": eff.efficiency.tolist(),
                "efficiency_error": eff.error.tolist(),
                "uncorrected": raw.nominal.tolist(),
                "oracle_chi2": oracle.chi2,
                "oracle_p_value": oracle.p_value,
                "purity": pur.purity.tolist(),
                "purity_corrected_chi2": by_bin.chi2,
                "purity_corrected_p_value": by_bin.p_value,
            },
        )
        _plot(
            out / f"acceptance_{name}.png",
            e,
            {
                "true fiducial (half B)": (test.truth, None),
                "unfolded, fakes cut, / efficiency": (fixed.nominal, fixed.total),
                "unfolded, no correction": (raw.nominal, None),
                "unfolded x purity (sim) / efficiency": (by_bin.unfolded.nominal, None),
                "truth as the draw (oracle), corrected": (oracle.unfolded.nominal, None),
            },
            f"{name}: acceptance closure, chi2/ndf {test.chi2:.1f}/{test.ndf}",
        )
    return res


def paired_chi2(h: Any, ref: Any, extra_var: np.ndarray | None = None) -> dict:
    """χ² of ``h - ref`` for two histograms of *shared* events (the same bootstrap
    weights per event): the covariance is that of the replica differences (what the
    shared events do cancels) plus ``extra_var (n,)`` on the diagonal (independent
    parts: a template's own statistics, the draws of events in only one of them)."""
    from scipy import stats

    diff = h.nominal - ref.nominal
    cov = np.atleast_2d(np.cov(h.replicas - ref.replicas, rowvar=False))
    if extra_var is not None:
        cov = cov + np.diag(np.nan_to_num(extra_var))
    keep = (h.nominal > 0) | (ref.nominal > 0)
    d = diff[keep]
    chi2 = float(d @ np.linalg.pinv(cov[np.ix_(keep, keep)]) @ d) if keep.any() else 0.0
    ndf = int(keep.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        pulls = diff / np.sqrt(np.diag(cov))
    return {
        "chi2": chi2,
        "ndf": ndf,
        "p_value": float(stats.chi2.sf(chi2, ndf)) if ndf else 1.0,
        "max_abs_pull": float(np.nanmax(np.abs(pulls[keep]))) if keep.any() else 0.0,
        "reference": ref.nominal.tolist(),
    }


def _matched(tensors: Any, result: Any) -> Any:
    """``tensors`` reordered to the events of the unbinned ``result``."""
    index = {int(e): i for i, e in enumerate(tensors.event)}
    try:
        take = np.array([index[int(e)] for e in result.event])
    except KeyError as err:
        raise ValueError(f"event {err} of the unbinned result is not in the ROOT file") from None
    return tensors.subset(take)


def backgrounds(
    model: Any, signal: Sequence[Path], background: Sequence[Path], fraction: float, out: Path
) -> dict:
    from hepvld.background import detector_features, signal_weights, subtract_after
    from hepvld.data import load_tensors
    from hepvld.io.unbinned import closure, histogram, read_unbinned

    s_res, b_res = read_unbinned(signal[1]), read_unbinned(background[1])
    s_t = _matched(
        load_tensors(str(signal[0]), require_truth=False, max_jets=model.max_jets), s_res
    )
    b_t = _matched(
        load_tensors(str(background[0]), require_truth=False, max_jets=model.max_jets), b_res
    )
    in_data = b_res.event % 2 == 0
    n_s, n_b_data = len(s_res), int(in_data.sum())
    nu_b = fraction * n_s
    w_mix = nu_b / n_b_data  # background events in the data weighted to nu_b
    w_tmpl = nu_b / int((~in_data).sum())
    res: dict[str, Any] = {
        "signal_events": n_s,
        "background_events_in_data": n_b_data,
        "background_template_events": int((~in_data).sum()),
        "expected_background": nu_b,
    }
    feats_d = np.concatenate(
        [detector_features(s_t), detector_features(b_t.subset(np.flatnonzero(in_data)))]
    )
    feats_b = detector_features(b_t.subset(np.flatnonzero(~in_data)))
    w_sig, loss = signal_weights(
        feats_d, feats_b, nu_b, background_weights=np.full(len(feats_b), w_tmpl), epochs=6, seed=3
    )
    mix_w = np.concatenate([np.ones(n_s), np.full(n_b_data, w_mix)])
    res["classifier_val_loss"] = loss
    res["signal_weight_sum"] = float((w_sig * mix_w).sum())
    boot = np.concatenate([s_res.bootstrap, b_res.bootstrap[in_data]])
    for name, fn in FNS.items():
        e = EDGES[name]
        xs, xb = s_res.observable(fn), b_res.observable(fn)
        x_mix = np.concatenate([xs, xb[in_data]])
        truth = s_res.observable(fn, truth=True)
        h_mix = histogram(x_mix, e, weights=mix_w, bootstrap=boot)
        h_tmpl = histogram(xb[~in_data], e, bootstrap=b_res.bootstrap[~in_data])
        after = subtract_after(h_mix, h_tmpl, scale=w_tmpl)
        before = histogram(x_mix, e, weights=mix_w * w_sig, bootstrap=boot)
        t_after = closure(after, truth)
        t_before = closure(before, truth)
        t_none = closure(h_mix, truth)
        # against the signal events' own unfolding (same events, same replicas): what
        # the subtraction leaves, free of the model's bias on the signal
        h_sig = histogram(xs, e, bootstrap=s_res.bootstrap)
        bg_in = histogram(xb[in_data], e, weights=np.full(n_b_data, w_mix))
        bg_in_before = histogram(xb[in_data], e, weights=w_mix * w_sig[n_s:])
        var_after = (
            np.nan_to_num(after.stat**2 - h_mix.stat**2)  # the template's statistics
            + np.nan_to_num(bg_in.draws) ** 2
            + (w_tmpl * np.nan_to_num(h_tmpl.draws)) ** 2
        )
        res[name] = {
            "after": _summary(name, t_after),
            "before": _summary(name, t_before),
            "no_subtraction": _summary(name, t_none),
            "vs_signal_unfolded": {
                "after": paired_chi2(after, h_sig, var_after),
                "before": paired_chi2(before, h_sig, np.nan_to_num(bg_in_before.draws) ** 2),
                "no_subtraction": paired_chi2(h_mix, h_sig, np.nan_to_num(bg_in.draws) ** 2),
            },
        }
        _plot(
            out / f"background_{name}.png",
            e,
            {
                "signal truth": (t_after.truth, None),
                "S+B unfolded, no subtraction": (h_mix.nominal, None),
                "after: - unfolded template": (after.nominal, after.total),
                "before: classifier weights": (before.nominal, before.total),
            },
            f"{name}: background closure (B = {fraction:.0%} of S)",
        )
    return res


def _markdown(res: dict) -> str:
    lines = []
    if "acceptance" in res:
        a = res["acceptance"]
        fr = a["fake_rates"]
        lines += [
            f"Acceptance: {a['generated']} generated, {a['selected']} selected, {a['fiducial']} fiducial.",
            f"Fake rate: unfolded {fr['unfolded']:.4f}, true {fr.get('true', float('nan')):.4f}.",
            "",
            "| observable | chi2/ndf (fakes cut per draw, / eff, vs true fiducial) | p | "
            "max |pull| | chi2/ndf (x purity from sim, / eff) | p | oracle chi2/ndf | oracle p |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, r in a["efficiency"].items():
            lines.append(
                f"| {name} | {r['chi2']:.1f}/{r['ndf']} | {r['p_value']:.3f} | "
                f"{r['max_abs_pull']:.2f} | {r['purity_corrected_chi2']:.1f}/{r['ndf']} | "
                f"{r['purity_corrected_p_value']:.3f} | {r['oracle_chi2']:.1f}/{r['ndf']} | "
                f"{r['oracle_p_value']:.3f} |"
            )
        lines.append("")
    if "backgrounds" in res:
        b = res["backgrounds"]
        lines += [
            f"Backgrounds: {b['signal_events']} signal, {b['background_events_in_data']} background "
            f"events in the data (weighted to {b['expected_background']:.0f}), "
            f"{b['background_template_events']} in the template; classifier val loss "
            f"{b['classifier_val_loss']:.4f}; sum of signal weights {b['signal_weight_sum']:.0f}.",
            "",
            "| observable | method | chi2/ndf vs signal truth | p | chi2/ndf vs signal "
            "unfolded (paired) | p |",
            "|---|---|---|---|---|---|",
        ]
        for name in FNS:
            for method in ("no_subtraction", "after", "before"):
                r = b[name][method]
                q = b[name]["vs_signal_unfolded"][method]
                lines.append(
                    f"| {name} | {method} | {r['chi2']:.1f}/{r['ndf']} | {r['p_value']:.3f} | "
                    f"{q['chi2']:.1f}/{q['ndf']} | {q['p_value']:.3f} |"
                )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    import hepvld

    p = Parser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("-c", "--checkpoint", required=True, type=Path)
    p.add_argument("--noselect", type=Path, help="signal generated with --no-select")
    p.add_argument("--signal", nargs=2, type=Path, metavar=("ROOT", "H5"))
    p.add_argument("--background", nargs=2, type=Path, metavar=("ROOT", "H5"))
    p.add_argument("--background-fraction", type=float, default=0.05)
    p.add_argument("-S", "--n-samples", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("-o", "--output", type=Path, default=Path("closure"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.output.mkdir(parents=True, exist_ok=True)
    model = hepvld.load(args.checkpoint)
    res: dict[str, Any] = {}
    if args.noselect:
        res["acceptance"] = acceptance(
            model, args.noselect, args.output, args.n_samples, args.steps
        )
    if args.signal and args.background:
        res["backgrounds"] = backgrounds(
            model, args.signal, args.background, args.background_fraction, args.output
        )
    (args.output / "closure.json").write_text(json.dumps(res, indent=2) + "\n")
    text = _markdown(res)
    (args.output / "closure.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
