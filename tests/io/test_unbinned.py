"""The unbinned result format: round trip, versioning, bootstrap, histograms, closure."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from hepvld.io.unbinned import (
    FORMAT_VERSION,
    UnbinnedFormatError,
    UnbinnedResult,
    closure,
    histogram,
    poisson_replicas,
    read_unbinned,
    write_unbinned,
)


def _result(b: int = 400, s: int = 4, r: int = 50, seed: int = 0) -> UnbinnedResult:
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(b, 11, 5)).astype(np.float32)
    truth[..., 0] = np.abs(truth[..., 0]) + 1.0  # positive masses
    values = (truth[:, None] + 0.1 * rng.normal(size=(b, s, 11, 5))).astype(np.float32)
    values[..., 0] = np.abs(values[..., 0])
    ev = np.arange(b, dtype=np.uint64) * 7 + 3
    return UnbinnedResult(
        event=ev,
        values=values,
        mask=np.ones((b, s, 11), bool),
        weight=np.ones(b),
        bootstrap=poisson_replicas(ev, r, seed=1),
        systematics={"up": np.full(b, 1.1)},
        truth_values=truth,
        truth_mask=np.ones((b, 11), bool),
        meta={"model": "toy", "target_level": "parton", "cutflow": {"names": ["all"]}},
    )


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    res = _result()
    path = tmp_path / "r.h5"
    write_unbinned(path, res)
    got = read_unbinned(path)
    for name in ("event", "values", "mask", "weight", "bootstrap", "truth_values"):
        np.testing.assert_array_equal(getattr(got, name), getattr(res, name))
    np.testing.assert_array_equal(got.systematics["up"], res.systematics["up"])
    assert got.meta == res.meta
    with h5py.File(path) as f:
        assert f.attrs["format"] == "hepvld-unbinned" and f.attrs["version"] == FORMAT_VERSION


def test_reader_refuses_other_files_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "r.h5"
    write_unbinned(path, _result(b=10))
    with h5py.File(path, "a") as f:
        f.attrs["version"] = FORMAT_VERSION + 1
    with pytest.raises(UnbinnedFormatError, match=r"r\.h5.*version"):
        read_unbinned(path)
    other = tmp_path / "x.h5"
    with h5py.File(other, "w") as f:
        f["a"] = 1
    with pytest.raises(UnbinnedFormatError, match=r"x\.h5.*format"):
        read_unbinned(other)
    text = tmp_path / "t.h5"
    text.write_text("no")
    with pytest.raises(UnbinnedFormatError, match=r"t\.h5"):
        read_unbinned(text)


def test_inconsistent_shapes_are_refused() -> None:
    res = _result(b=10)
    with pytest.raises(ValueError, match="weight"):
        UnbinnedResult(res.event, res.values, res.mask, res.weight[:5], res.bootstrap)


def test_poisson_replicas_keyed_by_event_and_poisson_distributed() -> None:
    ev = np.arange(20_000, dtype=np.uint64)
    w = poisson_replicas(ev, 5, seed=3)
    # keyed per event: a shuffled subset gets the same rows
    perm = np.random.default_rng(0).permutation(len(ev))[:100]
    np.testing.assert_array_equal(poisson_replicas(ev[perm], 5, seed=3), w[perm])
    assert not np.array_equal(poisson_replicas(ev, 5, seed=4), w)
    n = w.size  # mean 1, variance 1, P(0) = 1/e within 5 standard errors
    assert abs(w.mean() - 1) < 5 / np.sqrt(n)
    assert abs(w.var() - 1) < 5 * np.sqrt(2 / n)
    p0 = np.exp(-1)
    assert abs((w == 0).mean() - p0) < 5 * np.sqrt(p0 * (1 - p0) / n)


def test_histogram_stat_error_matches_poisson_and_draw_error_is_separate() -> None:
    rng = np.random.default_rng(5)
    b, s = 4000, 8
    x = rng.normal(size=(b, 1)) + 0.5 * rng.normal(size=(b, s))
    edges = np.linspace(-3, 3, 7)
    h = histogram(x, edges, bootstrap=poisson_replicas(np.arange(b), 300, seed=2))
    # nominal: each event spreads 1 over its draws
    assert h.nominal.sum() == pytest.approx(((x >= -3) & (x < 3)).mean(1).sum())
    # stat error of a bin ~ sqrt(sum over events of f_i^2); f_i the event's draw fraction
    frac = np.stack([((x >= lo) & (x < hi)).mean(1) for lo, hi in itertools.pairwise(edges)], 1)
    expected = np.sqrt((frac**2).sum(0))
    np.testing.assert_allclose(h.stat, expected, rtol=0.25)  # 300 replicas: ~4 % per bin
    # draw error: the spread of single-draw histograms / sqrt(S), smaller than stat here
    assert np.all(h.draws > 0) and np.all(h.draws < h.stat)
    # the covariance has the stat errors on its diagonal
    np.testing.assert_allclose(np.sqrt(np.diag(h.stat_cov)), h.stat)


def test_reader_rederives_observables_and_closure_passes_and_fails(tmp_path: Path) -> None:
    res = _result(b=2000, s=4, r=100)
    path = tmp_path / "r.h5"
    write_unbinned(path, res)
    got = read_unbinned(path)
    m = got.observable(lambda r: r.t_had.mass)
    assert m.shape == (2000, 4)
    np.testing.assert_allclose(m, res.values[:, :, 9, 0], rtol=1e-5)
    truth = got.observable(lambda r: r.t_had.mass, truth=True)
    edges = np.linspace(0, 3, 9)
    good = closure(got.histogram(m, edges), truth)
    assert good.passed, good.chi2
    biased = closure(got.histogram(m + 0.3, edges), truth)
    assert not biased.passed and biased.chi2 > 10 * good.ndf
    # a systematic variation scales the histogram by its weight
    up = got.histogram(m, edges, variation="up")
    np.testing.assert_allclose(up.nominal, 1.1 * got.histogram(m, edges).nominal)
    with pytest.raises(KeyError, match="down"):
        got.histogram(m, edges, variation="down")
    assert json.loads(json.dumps(got.meta)) == got.meta
