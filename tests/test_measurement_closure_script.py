"""analysis/measurement_closure.py runs end to end on tiny files (plumbing, not physics)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location(
        "mc", ROOT / "analysis" / "measurement_closure.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paired_chi2_cancels_the_shared_events() -> None:
    """Two histograms of the same events: their common statistics cancel; a shift of
    ``d`` bins' worth against ``extra_var`` gives ``χ² = Σ d²/var``."""
    from dataclasses import replace

    from hepvld.io.unbinned import histogram, poisson_replicas

    mod = _module()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 3))
    edges = np.linspace(-2, 2, 5)
    ref = histogram(x, edges, bootstrap=poisson_replicas(np.arange(4000), 50, seed=1))
    same = mod.paired_chi2(ref, ref, np.ones(4))
    assert same["chi2"] == 0.0 and same["ndf"] == 4
    d = np.array([0.0, 2.0, 0.0, 1.0])
    shifted = replace(ref, nominal=ref.nominal + d, replicas=ref.replicas + d)
    r = mod.paired_chi2(shifted, ref, np.full(4, 0.25))
    assert r["chi2"] == pytest.approx((d**2).sum() / 0.25) and r["max_abs_pull"] == pytest.approx(4)
    # without the pairing (the events' own statistics counted) the same shift is hidden
    assert r["chi2"] > 20 * (d**2 / np.diag(ref.stat_cov)).sum()


def test_closure_script_runs(tiny_root_file: Path, tiny_run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("pythia8mc")
    from hepvld.cli.unfold import main as unfold
    from hepvld.generate import generate

    mixed = tmp_path / "mixed.root"
    generate(mixed, 300, seed=9, mpi=False, count="generated", select=False, progress=False)
    h5 = tmp_path / "tiny.h5"
    opts = ["-S", "2", "--steps", "2", "--replicas", "10"]
    assert (
        unfold(
            [str(tiny_root_file), "-c", str(tiny_run_dir), "-o", str(h5), "--format", "hdf5", *opts]
        )
        == 0
    )
    mod = _module()
    out = tmp_path / "out"
    argv = [
        "-c",
        str(tiny_run_dir),
        "--noselect",
        str(mixed),
        "-S",
        "2",
        "--steps",
        "2",
        "-o",
        str(out),
    ]
    argv += ["--signal", str(tiny_root_file), str(h5), "--background", str(tiny_root_file), str(h5)]
    assert mod.main(argv) == 0
    res = json.loads((out / "closure.json").read_text())
    acc = res["acceptance"]
    assert acc["generated"] == 300 and 0 < acc["selected"] < 300
    assert 0 <= acc["fake_rates"]["unfolded"] <= 1 and 0 <= acc["fake_rates"]["true"] <= 1
    methods = {"after", "before", "no_subtraction"}
    assert set(res["backgrounds"]["t_had_pt"]) == methods | {"vs_signal_unfolded"}
    assert set(res["backgrounds"]["t_had_pt"]["vs_signal_unfolded"]) == methods
    assert (out / "background_t_had_pt.png").exists() and (
        out / "acceptance_t_had_mass.png"
    ).exists()
