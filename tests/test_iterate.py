"""Iterative unfolding: the density ratio, and the loop end to end on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hepvld.iterate import IterateConfig, density_ratio


def test_density_ratio_recovers_a_gaussian_shift() -> None:
    rng = np.random.default_rng(0)
    n = 6000
    num = rng.normal(0.5, 1.0, size=(n, 2)).astype(np.float32)
    den = rng.normal(0.0, 1.0, size=(n, 2)).astype(np.float32)
    at = np.array([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]], np.float32)
    r, loss = density_ratio(num, den, at, epochs=6, seed=1)
    exact = np.exp(0.5 * at[:, 0] - 0.125)  # N(0.5,1)/N(0,1) in the first coordinate
    np.testing.assert_allclose(np.log(r), np.log(exact), atol=0.2)
    assert loss < np.log(2)
    # identical samples: ratio ~ 1, loss ~ log 2
    r2, loss2 = density_ratio(den[: n // 2], den[n // 2 :], at, epochs=3, seed=2)
    np.testing.assert_allclose(np.log(r2), 0.0, atol=0.2)
    assert abs(loss2 - np.log(2)) < 0.02


def test_density_ratio_honours_weights() -> None:
    rng = np.random.default_rng(3)
    den = rng.normal(size=(8000, 1)).astype(np.float32)
    # the numerator is the denominator reweighted by exp(x) / E[exp(x)]: ratio exp(x - 1/2)
    w = np.exp(den[:, 0])
    at = np.array([[-1.0], [0.0], [1.0]], np.float32)
    r, _ = density_ratio(den, den, at, num_weights=w, epochs=6, seed=4)
    np.testing.assert_allclose(np.log(r), at[:, 0] - 0.5, atol=0.25)


def test_config_validates() -> None:
    with pytest.raises(ValueError, match="step_size"):
        IterateConfig(step_size=0)
    with pytest.raises(ValueError, match="reference"):
        IterateConfig(reference="nope")  # type: ignore[arg-type]


@pytest.mark.parametrize("features", ["raw", "observables"])
def test_iterate_cli_runs_and_reports(
    features: str, tiny_root_file: Path, tiny_run_dir: Path, tmp_path: Path
) -> None:
    from hepvld.cli.iterate import main

    out = tmp_path / "it"
    argv = ["--sim", str(tiny_root_file), "--data", str(tiny_root_file), "-c", str(tiny_run_dir)]
    opts = [
        "--features",
        features,
        "--iterations",
        "1",
        "--n-samples",
        "2",
        "--steps",
        "2",
        "--finetune-steps",
        "2",
    ]
    assert (
        main([*argv, "-o", str(out), *opts, "--classifier-epochs", "1", "--batch-size", "64"]) == 0
    )
    rows = json.loads((out / "iterations.json").read_text())
    assert [r["iteration"] for r in rows] == [0, 1]
    assert rows[1]["checkpoint"] == str(out / "iter_1")
    assert set(rows[0]["observables"]) >= {"t_had_mass", "t_lep_mass"}
    assert 0 < rows[1]["weights"]["ess_fraction"] <= 1
    w = np.load(out / "weights.npz")
    assert np.isfinite(w["weight"]).all() and abs(w["weight"].mean() - 1) < 1e-6
    meta = json.loads((out / "iter_1" / "checkpoints" / "latest.json").read_text())
    assert meta  # a normal run directory


def test_python_m_iterate_and_console_script() -> None:
    import os
    import subprocess
    import sys

    import tomllib

    out = subprocess.run(
        [sys.executable, "-m", "hepvld.iterate", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m hepvld.iterate")
    root = Path(__file__).parents[1]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["hepvld-iterate"] == "hepvld.cli.iterate:main"
