"""Prior dependence: how far do unfolded distributions follow a change of the truth?

    python -m hepvld.unfold test.root -c RUN -o nominal.h5 --format hdf5 -S 8 --steps 20
    python -m hepvld.unfold shifted175.root -c RUN -o shifted.h5 --format hdf5 -S 8 --steps 20
    python analysis/prior_shift.py --nominal nominal.h5 --shifted shifted.h5 -o prior_shift \\
        [--iterations-shifted it175/iterations.json --iterations-nominal it173/iterations.json]

Two changes of the truth are compared with the same model (trained at the nominal prior):

* ``mass``: an independent sample generated with another top mass (``--shifted``);
* ``top_pt``: the nominal sample reweighted at truth level by a softer top-pT spectrum,
  ``w = sqrt(SF(t_had) SF(t_lep))``, ``SF = exp(-slope (pT - 100 GeV))`` (the form of
  CMS's top-pT correction, ``--top-pt-slope`` per GeV, 4x CMS's by default). The weight
  multiplies the events' unfolded draws too: a sample drawn from the reweighted spectrum.

Per observable the *shift fraction* ``(unfolded_shifted - unfolded_nominal) /
(true_shifted - true_nominal)`` of a location statistic (median for masses, mean for the
others): 1 means the unfolding follows the truth, 0 means it returns its prior. Errors
from the files' Poisson bootstrap replicas (both samples; the top-pT change shares its
events, so its replicas are shared too), propagated to the fraction to first order
(the unfolded shift's error and the true shift's); the *truth floor* is the bootstrap spread of the
true shift itself, the smallest error any unfolding of these samples can have.

With ``--iterations-*`` (``iterations.json`` of ``python -m hepvld.iterate`` run on the
shifted and the nominal sample) the shift fraction per iteration and the nominal closure
(``unfolded_k(nominal) - unfolded_0(nominal)``) are added, with iteration 0's bootstrap
errors, and the *paired* shift fraction ``(unfolded_k(shifted) - unfolded_k(nominal)) /
true shift``, in which fine-tuning drifts common to both runs cancel, and the prior's own
move ``(prior_k - prior_0) / true shift`` (the reweighted simulation truth: does the
prior follow?) with the weights and the classifier loss. The top-pT change is iterated
on the reweighted nominal sample: ``--write-top-pt-weights w.npz`` writes its weights,
``hepvld iterate --data test.root --data-weights w.npz`` runs on it, and
``--iterations-top-pt`` reads its report. Writes ``prior_shift.json``,
``prior_shift.md`` and ``shift_fraction.png``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from hepvld.cli._common import Parser

log = logging.getLogger("prior_shift")

#: name -> (observable of the parton records, statistic)
OBSERVABLES: dict[str, tuple[Callable, str]] = {
    "t_had_mass": (lambda r: r.t_had.mass, "median"),
    "t_lep_mass": (lambda r: r.t_lep.mass, "median"),
    "W_had_mass": (lambda r: r.W_had.mass, "median"),
    "t_had_pt": (lambda r: r.t_had.pt, "mean"),
    "t_lep_pt": (lambda r: r.t_lep.pt, "mean"),
    "ttbar_mass": (lambda r: r.ttbar.mass, "median"),
}


def weighted_stat(x: np.ndarray, w: np.ndarray, stat: str) -> float:
    """Weighted median or mean of ``x`` (any shape; ``w`` broadcast to it)."""
    w = np.broadcast_to(w.reshape(len(w), *([1] * (x.ndim - 1))), x.shape).ravel()
    x = x.ravel()
    ok = np.isfinite(x) & (w > 0)
    x, w = x[ok], w[ok]
    if stat == "mean":
        return float(np.average(x, weights=w))
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cw, 0.5 * cw[-1])])


def replicas_of(x: np.ndarray, w: np.ndarray, boot: np.ndarray, stat: str) -> np.ndarray:
    """The statistic under each bootstrap replica ``boot (B, R)``."""
    return np.array([weighted_stat(x, w * boot[:, r], stat) for r in range(boot.shape[1])])


def top_pt_weights(res: object, slope: float) -> np.ndarray:
    """``sqrt(SF(t_had) SF(t_lep))`` at truth, normalised to mean 1."""
    pt_h = res.observable(lambda r: r.t_had.pt, truth=True)  # type: ignore[attr-defined]
    pt_l = res.observable(lambda r: r.t_lep.pt, truth=True)  # type: ignore[attr-defined]
    w = np.exp(-0.5 * slope * ((pt_h - 100.0) + (pt_l - 100.0)))
    return w / w.mean()


def shift_table(nom: object, shifted: object | None, slope: float) -> dict[str, dict]:
    """Shift fractions of both truth changes for every observable."""
    out: dict[str, dict] = {}
    wn = nom.weight  # type: ignore[attr-defined]
    bn = nom.bootstrap.astype(np.float64)  # type: ignore[attr-defined]
    wpt = top_pt_weights(nom, slope)
    for name, (fn, stat) in OBSERVABLES.items():
        un = nom.observable(fn)  # type: ignore[attr-defined]
        tn = nom.observable(fn, truth=True)  # type: ignore[attr-defined]
        base_u, base_t = weighted_stat(un, wn, stat), weighted_stat(tn, wn, stat)
        rep_u, rep_t = replicas_of(un, wn, bn, stat), replicas_of(tn, wn, bn, stat)
        row: dict[str, dict] = {}
        changes = {}
        if shifted is not None:
            us = shifted.observable(fn)  # type: ignore[attr-defined]
            ts = shifted.observable(fn, truth=True)  # type: ignore[attr-defined]
            ws, bs = shifted.weight, shifted.bootstrap.astype(np.float64)  # type: ignore[attr-defined]
            changes["mass"] = (
                weighted_stat(us, ws, stat),
                weighted_stat(ts, ws, stat),
                replicas_of(us, ws, bs, stat),
                replicas_of(ts, ws, bs, stat),
                rep_u,
                rep_t,
            )
        changes["top_pt"] = (
            weighted_stat(un, wn * wpt, stat),
            weighted_stat(tn, wn * wpt, stat),
            replicas_of(un, wn * wpt, bn, stat),
            replicas_of(tn, wn * wpt, bn, stat),
            rep_u,  # same events: the same replicas, correlated
            rep_t,
        )
        for change, (su, st, rsu, rst, rbu, rbt) in changes.items():
            d_true, d_unf = st - base_t, su - base_u
            err_u = float(np.std(rsu - rbu, ddof=1))
            floor = float(np.std(rst - rbt, ddof=1))
            frac = d_unf / d_true if d_true else float("nan")
            # first-order propagation of the unfolded and the true shift's errors
            frac_err = (
                float(np.hypot(err_u, frac * floor) / abs(d_true)) if d_true else float("nan")
            )
            row[change] = {
                "statistic": stat,
                "true_nominal": base_t,
                "true_shifted": st,
                "unfolded_nominal": base_u,
                "unfolded_shifted": su,
                "true_shift": d_true,
                "unfolded_shift": d_unf,
                "unfolded_shift_err": err_u,
                "truth_floor": floor,
                "shift_fraction": frac,
                "shift_fraction_err": frac_err,
                "nominal_bias": base_u - base_t,
            }
        out[name] = row
    return out


def iteration_table(
    table: dict[str, dict],
    shifted_json: Path | None,
    nominal_json: Path | None,
    change: str = "mass",
) -> dict[str, list[dict]]:
    """Per observable and iteration of the run on the changed data (``change``: ``mass``,
    the shifted sample; ``top_pt``, the reweighted nominal, ``hepvld iterate
    --data-weights``): shift fraction, nominal drift, paired fraction, and the prior's own
    move (the reweighted simulation truth, ``prior`` of ``iterations.json``) with the
    weight distribution and the classifier's loss of that run."""
    rows: dict[str, list[dict]] = {}
    sh = json.loads(shifted_json.read_text()) if shifted_json else []
    no = json.loads(nominal_json.read_text()) if nominal_json else []
    if change != "mass" and not sh:  # the nominal drift is reported with the mass change
        return rows
    for name, (_, stat) in OBSERVABLES.items():
        runs = [run[0]["observables"] for run in (sh, no) if run]
        if change not in table[name] or not any(name in obs for obs in runs):
            continue
        m = table[name][change]
        ref = m["unfolded_nominal"]
        out = []
        for k in range(max(len(sh), len(no))):
            r: dict = {"iteration": k}
            if k < len(sh) and name in sh[k]["observables"]:
                v = sh[k]["observables"][name][stat]
                r["unfolded_shifted"] = v
                r["shift_fraction"] = (v - ref) / m["true_shift"]
                r["shift_fraction_err"] = m["shift_fraction_err"]
                prior = sh[k].get("prior", {})
                if name in prior and name in sh[0].get("prior", {}):
                    p0 = sh[0]["prior"][name][stat]
                    r["prior_shifted"] = prior[name][stat]
                    r["prior_shift_fraction"] = (prior[name][stat] - p0) / m["true_shift"]
                for key in ("weights", "classifier_val_loss"):
                    if key in sh[k]:
                        r[key] = sh[k][key]
            if k < len(no) and name in no[k]["observables"]:
                v0 = no[0]["observables"][name][stat]
                v = no[k]["observables"][name][stat]
                r["nominal_drift"] = v - v0
                r["nominal_drift_err"] = m["unfolded_shift_err"] / np.sqrt(2)
                prior = no[k].get("prior", {})
                if name in prior:
                    r["prior_nominal"] = prior[name][stat]
            if "unfolded_shifted" in r and "nominal_drift" in r:
                # against the nominal run's same iteration: fine-tuning drifts common to
                # both runs (an unconverged model changes even at unit weights) cancel
                paired = r["unfolded_shifted"] - no[k]["observables"][name][stat]
                r["paired_shift_fraction"] = paired / m["true_shift"]
            out.append(r)
        rows[name] = out
    return rows


def _iteration_markdown(iters: dict, change: str) -> list[str]:
    def f(r: dict, key: str, fmt: str = "{:.3f}") -> str:
        return fmt.format(r[key]) if r.get(key) is not None else "–"

    lines = [
        "",
        f"Iterations, change `{change}`:",
        "",
        "| observable | iteration | unfolded | shift fraction | nominal drift | paired "
        "fraction | prior | prior shift fraction | weights std / max / ESS | classifier "
        "loss |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in iters.items():
        for r in rows:
            sf = (
                f"{r['shift_fraction']:.3f} ± {r['shift_fraction_err']:.3f}"
                if "shift_fraction" in r
                else "–"
            )
            nd = (
                f"{r['nominal_drift']:.3f} ± {r['nominal_drift_err']:.3f}"
                if "nominal_drift" in r
                else "–"
            )
            w = r.get("weights") or {}
            ws = (
                f"{w['std']:.3f} / {w['max']:.2f} / {w['ess_fraction']:.3f}"
                if {"std", "max", "ess_fraction"} <= set(w)
                else "–"
            )
            lines.append(
                f"| {name} | {r['iteration']} | {f(r, 'unfolded_shifted')} | {sf} | {nd} | "
                f"{f(r, 'paired_shift_fraction')} | {f(r, 'prior_shifted')} | "
                f"{f(r, 'prior_shift_fraction')} | {ws} | "
                f"{f(r, 'classifier_val_loss', '{:.4f}')} |"
            )
    return lines


def _markdown(table: dict, iters: dict[str, dict]) -> str:
    lines = [
        "| observable | change | stat | true shift | truth floor | unfolded shift | "
        "shift fraction | nominal bias |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in table.items():
        for change, r in row.items():
            lines.append(
                f"| {name} | {change} | {r['statistic']} | {r['true_shift']:.3f} | "
                f"{r['truth_floor']:.3f} | {r['unfolded_shift']:.3f} ± "
                f"{r['unfolded_shift_err']:.3f} | {r['shift_fraction']:.3f} ± "
                f"{r['shift_fraction_err']:.3f} | {r['nominal_bias']:.3f} |"
            )
    for change, rows in iters.items():
        if rows:
            lines += _iteration_markdown(rows, change)
    return "\n".join(lines) + "\n"


def _significant(row: dict | None) -> bool:
    """A true shift larger than three truth floors (else its fraction means nothing)."""
    return row is not None and abs(row["true_shift"]) > 3 * row["truth_floor"]


def _plot(table: dict, iters: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = 2 if any(iters.values()) else 1
    fig, axes = plt.subplots(1, ncol, figsize=(6 * ncol, 4), squeeze=False)
    ax = axes[0, 0]
    names = list(table)
    for j, change in enumerate(["mass", "top_pt"]):
        # only true shifts significant against the truth floor
        shown = [(i, n) for i, n in enumerate(names) if _significant(table[n].get(change))]
        xs = [i + 0.2 * (j - 0.5) for i, _ in shown]
        ys = [table[n][change]["shift_fraction"] for _, n in shown]
        es = [table[n][change]["shift_fraction_err"] for _, n in shown]
        ax.errorbar(xs, ys, es, fmt="o", label=change)
    ax.axhline(1, color="k", lw=0.8, ls="--")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("shift fraction (unfolded / true; |true| > 3 floors)")
    ax.set_ylim(-0.5, 1.5)
    ax.legend()
    if any(iters.values()):
        ax = axes[0, 1]
        for change, by_name in iters.items():
            for name, rows in by_name.items():
                if not _significant(table[name].get(change)):
                    continue
                ks = [r["iteration"] for r in rows if "shift_fraction" in r]
                ys = [r["shift_fraction"] for r in rows if "shift_fraction" in r]
                es = [r["shift_fraction_err"] for r in rows if "shift_fraction" in r]
                if ks:
                    ax.errorbar(ks, ys, es, marker="o", label=f"{name} ({change})", capsize=2)
        ax.axhline(0.8, color="r", lw=0.8, ls="--", label="goal 0.8")
        ax.set_xlabel("iteration")
        ax.set_ylabel("shift fraction")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    from hepvld.io.unbinned import read_unbinned

    p = Parser(description=(__doc__ or "").splitlines()[0])
    p.add_argument(
        "--nominal", required=True, type=Path, help="unbinned result of the nominal sample"
    )
    p.add_argument("--shifted", type=Path, help="unbinned result of the shifted-mass sample")
    p.add_argument("--top-pt-slope", type=float, default=0.002, help="per GeV (CMS: 0.0005)")
    p.add_argument("--iterations-shifted", type=Path, help="iterations.json on the shifted sample")
    p.add_argument("--iterations-nominal", type=Path, help="iterations.json on the nominal sample")
    p.add_argument(
        "--iterations-top-pt",
        type=Path,
        help="iterations.json on the top-pT-reweighted nominal sample (hepvld iterate "
        "--data-weights of --write-top-pt-weights)",
    )
    p.add_argument(
        "--write-top-pt-weights",
        type=Path,
        metavar="NPZ",
        help="write the nominal sample's top-pT weights (arrays event, weight) for "
        "hepvld iterate --data-weights",
    )
    p.add_argument("-o", "--output", type=Path, default=Path("prior_shift"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    nom = read_unbinned(args.nominal)
    shifted = read_unbinned(args.shifted) if args.shifted else None
    table = shift_table(nom, shifted, args.top_pt_slope)
    if args.write_top_pt_weights:
        np.savez(
            args.write_top_pt_weights,
            event=nom.event.astype(np.int64),
            weight=nom.weight * top_pt_weights(nom, args.top_pt_slope),
        )
        log.info("top-pT weights of %d events: %s", len(nom), args.write_top_pt_weights)
    iters = {
        "mass": iteration_table(table, args.iterations_shifted, args.iterations_nominal),
        "top_pt": iteration_table(
            table, args.iterations_top_pt, args.iterations_nominal, change="top_pt"
        ),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "prior_shift.json").write_text(
        json.dumps(
            {"shift": table, "iterations": iters["mass"], "iterations_top_pt": iters["top_pt"]},
            indent=2,
        )
        + "\n"
    )
    text = _markdown(table, iters)
    (args.output / "prior_shift.md").write_text(text)
    _plot(table, iters, args.output / "shift_fraction.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
