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


def test_read_data_weights_matches_event_numbers(tmp_path: Path) -> None:
    from hepvld.iterate import read_data_weights

    f = tmp_path / "w.npz"
    np.savez(f, event=np.array([7, 3, 5]), weight=np.array([0.7, 0.3, 0.5]))
    np.testing.assert_allclose(read_data_weights(f, np.array([5, 7, 3, 5])), [0.5, 0.7, 0.3, 0.5])
    with pytest.raises(
        ValueError, match=r"w\.npz: 1 data events have no weight \(event numbers \[4\]"
    ):
        read_data_weights(f, np.array([3, 4]))
    np.savez(f, event=np.array([1]), weight=np.array([-1.0]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        read_data_weights(f, np.array([1]))
    np.savez(f, event=np.array([1]))
    with pytest.raises(ValueError, match=r"no array \['weight'\]"):
        read_data_weights(f, np.array([1]))


def test_iterate_data_weights_weight_the_unfolded_data(
    tiny_root_file: Path, tiny_run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Weights 1 on the first half of the data, 0 on the rest: the unfolded summary is
    that of the first half alone (``max_data_events``; the draws are keyed per event);
    constant weights change nothing; the CLI reads them from an NPZ by event number."""
    from hepvld.api import load
    from hepvld.cli.iterate import main
    from hepvld.data import load_tensors
    from hepvld.iterate import PARTON_OBSERVABLES, _draws, _summary, iterate

    cfg = IterateConfig(
        iterations=1, n_samples=2, steps=2, finetune_steps=0, classifier_epochs=1, batch_size=64
    )
    um = load(tiny_run_dir)
    data = load_tensors(
        str(tiny_root_file), require_truth=False, max_jets=um.max_jets, level=um.level
    )
    half = len(data) // 2
    args = ([tiny_root_file], [tiny_root_file], tiny_run_dir)
    plain = iterate(*args, tmp_path / "plain", cfg)
    const = iterate(*args, tmp_path / "const", cfg, data_weights=np.full(len(data), 3.0))
    w = (np.arange(len(data)) < half).astype(float)
    weighted = iterate(*args, tmp_path / "w", cfg, data_weights=w)
    first = data.subset(np.arange(half))  # the first half alone, unweighted
    expected = _summary(um.level, *_draws(um.model, first, cfg, cfg.seed), PARTON_OBSERVABLES)
    for name, v in plain[0].observables.items():
        assert const[0].observables[name] == pytest.approx(v, rel=1e-9)
        assert weighted[0].observables[name] == pytest.approx(expected[name], rel=1e-6)
    assert weighted[0].observables != plain[0].observables
    assert weighted[1].weights != plain[1].weights  # the classifier sees the data weights
    # the CLI: an NPZ keyed by event number, in another order
    f = tmp_path / "w.npz"
    np.savez(f, event=data.event[::-1], weight=w[::-1])
    out = tmp_path / "cli"
    argv = ["--sim", str(tiny_root_file), "--data", str(tiny_root_file), "-c", str(tiny_run_dir)]
    opts = ["--iterations", "1", "--n-samples", "2", "--steps", "2", "--finetune-steps", "0"]
    small = ["--classifier-epochs", "1", "--batch-size", "64"]
    assert main([*argv, "-o", str(out), *opts, *small, "--data-weights", str(f)]) == 0
    rows = json.loads((out / "iterations.json").read_text())
    for name, v in weighted[0].observables.items():
        assert rows[0]["observables"][name] == pytest.approx(v, rel=1e-9)
    np.savez(f, event=data.event[1:], weight=w[1:])
    capsys.readouterr()
    assert main([*argv, "-o", str(out), *opts, *small, "--data-weights", str(f)]) == 1
    err = capsys.readouterr().err
    assert f"data weights {f}: 1 data events have no weight" in err
    assert main([*argv, "-o", str(out), "--data-weights", str(tmp_path / "nope.npz")]) == 1
    assert "nope.npz: no such file" in capsys.readouterr().err
