"""Particle-level evaluation events and draws (the stand-in network), the unfold output
of a variable-length level and the parton writer's unchanged layout."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

pytest.importorskip("hepvld.targets.particle")

from hepvld.api import UnfoldingModel, unfold
from hepvld.evaluation.particle_data import (
    load_particle_events,
    unfold_particle_draws,
)
from hepvld.io import open_events
from hepvld.testing.particle import FakeParticleNet


@pytest.fixture(scope="module")
def fake_model() -> UnfoldingModel:
    return UnfoldingModel(FakeParticleNet(10), {"model": "fake", "max_jets": 20})


def test_splits_are_disjoint_and_in_both_phase_spaces(tiny_root_file: Path, fake_model) -> None:
    level = fake_model.level
    fractions = (0.5, 0.2, 0.3)
    test = load_particle_events([tiny_root_file], level, split="test", fractions=fractions)
    train = load_particle_events([tiny_root_file], level, split="train", fractions=fractions)
    every = load_particle_events([tiny_root_file], level, split="all", fractions=fractions)
    a, b = set(ak.to_list(test.events.event)), set(ak.to_list(train.events.event))
    assert a and b and not a & b and a | b <= set(ak.to_list(every.events.event))
    assert np.isfinite(every.values).all() and every.mask[:, 0].all()
    assert np.all(level.truth_selection(every.events).passed)
    n_jets = (every.mask[:, 1:] & (every.values[:, 1:, 5:7].sum(-1) > 0.5)).sum(-1)
    assert np.all(n_jets >= 4)  # the detector cuts applied at particle level
    with pytest.raises(ValueError, match="not available"):
        load_particle_events([tiny_root_file], level, split="test", fractions=(1.0,))


def test_draws_rebuild_the_level_layout(tiny_root_file: Path, fake_model) -> None:
    data = load_particle_events([tiny_root_file], fake_model.level, split="all", fractions=())
    data = data.subset(np.arange(len(data)) < 25)
    values, mask, ok = unfold_particle_draws(
        data, fake_model, n_samples=3, sampler="ddim", steps=2, batch_size=10, seed=3
    )
    assert ok.all() and values.shape == (25, 3, *fake_model.level.shape)
    out = unfold(data.events, model=fake_model, n_samples=3, steps=2, seed=3, batch_size=7)
    # the records are the draws: object counts and leading pT agree
    n = ak.to_numpy(ak.num(out.objects, axis=-1))
    np.testing.assert_array_equal(n, mask.sum(-1) - 1)
    pt = np.hypot(values[..., 1:, 0], values[..., 1:, 1])
    lead = np.where(mask[..., 1:], pt, -1).max(-1)
    np.testing.assert_allclose(ak.to_numpy(out.objects.pt[:, :, 0]), lead, rtol=1e-5)


def test_unfold_files_streams_the_particle_collections(
    tiny_root_file: Path, fake_model, tmp_path
) -> None:
    import uproot

    from hepvld.io.unfolded import draw_objects, unfold_files

    path = tmp_path / "u.root"
    n, _ = unfold_files(
        [tiny_root_file],
        path,
        model=fake_model,
        chunk_events=40,
        max_events=100,
        n_samples=2,
        steps=2,
    )
    arrays = uproot.open(path)["Unfolded"].arrays()
    assert len(arrays) == n > 0
    direct = unfold(open_events(tiny_root_file)[:100], model=fake_model, n_samples=2, steps=2)
    direct = ak.drop_none(direct, axis=0)
    back = draw_objects(arrays)
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(back.pt, axis=None)),
        ak.to_numpy(ak.flatten(direct.objects.pt, axis=None)),
        rtol=1e-6,
    )


def test_parton_writer_layout_is_unchanged(tmp_path) -> None:
    import uproot

    from hepvld.io.unfolded import write_unfolded
    from hepvld.targets import PARTON

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 11, 5))
    x[..., 0] = np.abs(x[..., 0]) + 1.0
    from hepvld.api import _expand_to_events

    records = _expand_to_events(PARTON.to_records(x), np.ones(4, dtype=bool))  # as unfold does
    write_unfolded(tmp_path / "p.root", records, np.arange(4))
    keys = uproot.open(tmp_path / "p.root")["Unfolded"].keys()
    expect = ["event", "nDraw"] + [
        f"Draw_{p}_{c}" for p in PARTON.names for c in ("pt", "eta", "phi", "mass")
    ]
    assert keys == expect


def test_evaluate_cli_detects_the_particle_level(
    tiny_root_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import hepvld.api
    from hepvld.cli.evaluate import main

    meta = {
        "model": "fake",
        "max_jets": 20,
        "split": [0.5, 0.2, 0.3],
        "files": [str(tiny_root_file)],
    }
    monkeypatch.setattr(
        hepvld.api, "load", lambda *a, **k: UnfoldingModel(FakeParticleNet(10), meta)
    )
    out = tmp_path / "report"
    argv = ["-c", "run", "--data", str(tiny_root_file), "-o", str(out), "-S", "4"]
    argv += ["--steps", "2", "--no-plots", "--n-boot", "5", "--sampler", "ddim"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "particle level" in printed and "n_jets" in printed
    results = json.loads((out / "results.json").read_text())
    assert "training truth" in results["meta"]  # the checkpoint's files, train split
    assert "multiplicity_n_jets" in results["tables"]
