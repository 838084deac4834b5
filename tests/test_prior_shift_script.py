"""analysis/prior_shift.py on toy unbinned results with a known answer."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from hepvld.io.unbinned import UnbinnedResult, poisson_replicas, write_unbinned

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "prior_shift", ROOT / "analysis" / "prior_shift.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _partons(rng: np.random.Generator, b: int, top_mass: float) -> np.ndarray:
    p = rng.normal(0, 60, size=(b, 11, 3))
    m = np.abs(rng.normal(5, 1, size=(b, 11)))
    m[:, 8:10] = top_mass + rng.standard_cauchy(size=(b, 2)).clip(-20, 20) * 0.7
    e = np.sqrt(m**2 + (p**2).sum(-1))
    return np.concatenate([m[..., None], np.log(e)[..., None], p], -1).astype(np.float32)


def _result(truth: np.ndarray, draws: np.ndarray, seed: int) -> UnbinnedResult:
    b, s = draws.shape[:2]
    ev = np.arange(b, dtype=np.uint64) + 1000 * seed
    return UnbinnedResult(
        event=ev,
        values=draws,
        mask=np.ones((b, s, 11), bool),
        weight=np.ones(b),
        bootstrap=poisson_replicas(ev, 30, seed),
        truth_values=truth,
        truth_mask=np.ones((b, 11), bool),
        meta={"target_level": "parton"},
    )


def test_shift_fraction_is_one_for_truth_and_zero_for_the_prior(tmp_path: Path) -> None:
    mod = _script()
    rng = np.random.default_rng(1)
    b, s = 3000, 2
    t_nom, t_shift = _partons(rng, b, 173.0), _partons(rng, b, 175.0)
    prior = _partons(rng, b * s, 173.0).reshape(b, s, 11, 5)
    # nominal: perfect; shifted: "perfect" copy (fraction 1) vs the prior (fraction 0)
    nom = _result(t_nom, np.repeat(t_nom[:, None], s, 1), 1)
    follows = _result(t_shift, np.repeat(t_shift[:, None], s, 1), 2)
    stuck = _result(t_shift, prior, 3)
    for name, res in [("nom", nom), ("follows", follows), ("stuck", stuck)]:
        write_unbinned(tmp_path / f"{name}.h5", res)
    it = tmp_path / "it.json"
    it.write_text(
        json.dumps(
            [{"observables": {"t_had_mass": {"median": 173.0 + 2.0 * k / 2}}} for k in range(3)]
        )
    )
    nom_it = tmp_path / "nom.json"  # the nominal run drifts by +0.5 per iteration
    nom_it.write_text(
        json.dumps([{"observables": {"t_had_mass": {"median": 173.0 + 0.5 * k}}} for k in range(3)])
    )
    out = tmp_path / "out"
    argv = ["--nominal", str(tmp_path / "nom.h5"), "--shifted", str(tmp_path / "follows.h5")]
    its = ["--iterations-shifted", str(it), "--iterations-nominal", str(nom_it)]
    assert mod.main([*argv, "-o", str(out), *its]) == 0
    got = json.loads((out / "prior_shift.json").read_text())
    r = got["shift"]["t_had_mass"]["mass"]
    assert abs(r["true_shift"] - 2.0) < 4 * r["truth_floor"] + 0.05
    assert r["shift_fraction"] == 1.0 and r["truth_floor"] > 0
    # top-pT reweighting: the unfolding equals the truth, so it follows exactly
    assert abs(got["shift"]["t_had_pt"]["top_pt"]["shift_fraction"] - 1.0) < 1e-9
    assert got["shift"]["t_had_pt"]["top_pt"]["true_shift"] < -1  # a softer spectrum
    fr = [row["shift_fraction"] for row in got["iterations"]["t_had_mass"]]
    assert len(fr) == 3 and fr[0] < fr[1] < fr[2]
    rows = got["iterations"]["t_had_mass"]
    assert [row["nominal_drift"] for row in rows] == [0.0, 0.5, 1.0]
    for k, row in enumerate(rows):  # the common drift cancels in the paired fraction
        paired = (173.0 + k) - (173.0 + 0.5 * k)
        assert row["paired_shift_fraction"] == pytest.approx(paired / r["true_shift"])
    assert (out / "shift_fraction.png").stat().st_size > 0
    argv[-1] = str(tmp_path / "stuck.h5")
    assert mod.main([*argv, "-o", str(out)]) == 0
    r = json.loads((out / "prior_shift.json").read_text())["shift"]["t_had_mass"]["mass"]
    assert abs(r["shift_fraction"]) < 4 * r["shift_fraction_err"]


def test_top_pt_iterations_prior_move_and_weights_file(tmp_path: Path) -> None:
    mod = _script()
    rng = np.random.default_rng(5)
    b, s = 2000, 2
    t_nom = _partons(rng, b, 173.0)
    nom = _result(t_nom, np.repeat(t_nom[:, None], s, 1), 1)
    write_unbinned(tmp_path / "nom.h5", nom)
    out = tmp_path / "out"
    wfile = tmp_path / "w.npz"
    assert mod.main(["--nominal", str(tmp_path / "nom.h5"), "-o", str(out)]) == 0
    got = json.loads((out / "prior_shift.json").read_text())
    d_true = got["shift"]["t_had_pt"]["top_pt"]["true_shift"]
    ref = got["shift"]["t_had_pt"]["top_pt"]["unfolded_nominal"]

    # the top-pT run: unfolded moves by half the true shift per iteration, its prior lags
    # one iteration behind; the nominal run stays put
    def row(k: int, unf: float, prior: float) -> dict:
        return {
            "observables": {"t_had_pt": {"mean": unf, "median": unf}},
            "prior": {"t_had_pt": {"mean": prior, "median": prior}},
            "weights": {"std": 0.1 * k, "max": 1 + k, "ess_fraction": 1 - 0.1 * k},
            "classifier_val_loss": 0.69 if k < 2 else None,
        }

    frac = [0.5, 0.75, 0.875]
    pt_it, nom_it = tmp_path / "pt.json", tmp_path / "nom.json"
    pt_it.write_text(
        json.dumps(
            [
                row(k, ref + f * d_true, 150.0 + (frac[k - 1] if k else 0) * d_true)
                for k, f in enumerate(frac)
            ]
        )
    )
    nom_it.write_text(json.dumps([row(k, ref, 150.0) for k in range(3)]))
    argv = ["--nominal", str(tmp_path / "nom.h5"), "-o", str(out)]
    its = ["--iterations-top-pt", str(pt_it), "--iterations-nominal", str(nom_it)]
    assert mod.main([*argv, *its, "--write-top-pt-weights", str(wfile)]) == 0
    got = json.loads((out / "prior_shift.json").read_text())
    rows = got["iterations_top_pt"]["t_had_pt"]
    assert [r["shift_fraction"] for r in rows] == pytest.approx(frac)
    assert [r["paired_shift_fraction"] for r in rows] == pytest.approx(frac)
    assert [r["prior_shift_fraction"] for r in rows] == pytest.approx([0.0, 0.5, 0.75])
    assert rows[2]["weights"]["max"] == 3 and rows[2]["classifier_val_loss"] is None
    assert set(got["iterations_top_pt"]) == {"t_had_pt"}  # only the reported observables
    assert "prior shift fraction" in (out / "prior_shift.md").read_text()
    w = np.load(wfile)
    np.testing.assert_array_equal(w["event"], nom.event.astype(np.int64))
    np.testing.assert_allclose(w["weight"], mod.top_pt_weights(nom, 0.002))
