"""Particle-level records, output files and feature tables on fake draws in the contract's
layout (values recomputed here with independent formulas)."""

from __future__ import annotations

import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

pytest.importorskip("hepvld.targets.particle")

from hepvld.targets import get_level
from hepvld.targets import particle_output as po
from hepvld.testing.particle import fake_particle_values

TYPES = ("bjet", "light_jet", "electron", "muon")


@pytest.fixture(scope="module")
def level():
    return get_level("particle", {"max_objects": 10})


@pytest.fixture(scope="module")
def draws(level):
    return fake_particle_values(np.random.default_rng(1), (6, 3), level.max_objects)


def _objects_of(values: np.ndarray, mask: np.ndarray) -> list[tuple[float, float, int]]:
    """(pt, mass, type) of the real objects of one row, by decreasing pT."""
    out = []
    for slot in np.flatnonzero(mask[1:]) + 1:
        x = values[slot]
        out.append(
            (float(np.sqrt(x[0] ** 2 + x[1] ** 2)), float(np.exp(x[4]) - 1), int(x[5:].argmax()))
        )
    return sorted(out, key=lambda t: -t[0])


def test_records_hold_every_real_object_sorted_by_pt(level, draws) -> None:
    values, mask = draws
    rec = po.to_records(level, values, mask)
    assert len(rec) == 6 and ak.num(rec, axis=1).tolist() == [3] * 6
    for b in range(6):
        for s in range(3):
            expect = _objects_of(values[b, s], mask[b, s])
            obj = rec[b, s].objects
            assert len(obj) == mask[b, s].sum() - 1
            np.testing.assert_allclose(obj.pt.to_numpy(), [e[0] for e in expect], rtol=1e-9)
            np.testing.assert_allclose(obj.mass.to_numpy(), [e[1] for e in expect], atol=1e-9)
            assert obj["type"].to_list() == [e[2] for e in expect]
            ev = values[b, s, 0]
            assert rec[b, s].event.met == pytest.approx(ev[0])
            assert rec[b, s].event.met_phi == pytest.approx(np.arctan2(ev[1], ev[2]))
            assert pytest.approx(ev[6]) == rec[b, s].event.nu.E


def test_records_without_draw_axis_match_a_single_draw(level, draws) -> None:
    values, mask = draws
    one = po.to_records(level, values[:, 1], mask[:, 1])
    both = po.to_records(level, values, mask)
    assert ak.all(one.objects.pt == both[:, 1].objects.pt)
    assert one.type.length == 6 and one.ndim == 1


def test_padded_slots_are_ignored(level, draws) -> None:
    values, mask = draws
    noisy = np.where(mask[..., None], values, 1e3)
    a = po.feature_table(level, values, mask)
    b = po.feature_table(level, noisy, mask)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(b))


def test_feature_table_counts_and_leading_objects(level, draws) -> None:
    values, mask = draws
    table = po.feature_table(level, values, mask)
    labels = po.feature_labels(level)
    assert table.shape == (6, 3, len(labels))
    col = {name: table[..., i] for i, name in enumerate(labels)}
    for b in range(6):
        for s in range(3):
            objs = _objects_of(values[b, s], mask[b, s])
            types = [o[2] for o in objs]
            assert col["n_objects"][b, s] == len(objs)
            assert col["n_jets"][b, s] == sum(t < 2 for t in types)
            assert col["n_bjets"][b, s] == types.count(0)
            assert col["n_leptons"][b, s] == sum(t >= 2 for t in types)
            assert col["obj1/pt"][b, s] == pytest.approx(max(o[0] for o in objs))
            bpts = sorted((o[0] for o in objs if o[2] == 0), reverse=True)
            assert col["bjet2/pt"][b, s] == pytest.approx(bpts[1])
            assert col["met"][b, s] == pytest.approx(values[b, s, 0, 0])


def test_absent_objects_are_nan(level) -> None:
    values, mask = fake_particle_values(np.random.default_rng(2), (4,), 10, min_objects=3)
    table = po.feature_table(level, values, mask)
    col = dict(zip(po.feature_labels(level), table.T, strict=True))
    n = mask.sum(-1) - 1
    assert np.all(np.isnan(col["obj4/pt"]) == (n < 4))
    assert np.all(np.isfinite(col["obj3/eta"]))


def test_pseudo_top_columns_are_the_pseudo_top_of_the_records(level, draws) -> None:
    values, mask = draws
    table = po.feature_table(level, values[:, 0], mask[:, 0])
    labels = po.feature_labels(level)
    tops = po.with_pseudo_top(po.to_records(level, values[:, 0], mask[:, 0]))
    got = table[:, labels.index("t_had/mass")]
    expect = ak.to_numpy(ak.fill_none(tops.t_had.mass, np.nan))
    np.testing.assert_allclose(got, expect, equal_nan=True)
    assert set(po.PSEUDO_TOP_PARTICLES) <= set(ak.fields(tops))


def test_written_file_reads_back_with_uproot_and_coffea(level, draws, tmp_path: Path) -> None:
    import uproot

    from hepvld.io.unfolded import draw_objects, write_unfolded

    values, mask = draws
    rec = po.to_records(level, values, mask)
    path = tmp_path / "u.root"
    assert write_unfolded(path, rec, np.arange(6) + 100, level=level) == 6
    arrays = uproot.open(path)["Unfolded"].arrays()
    assert arrays["event"].tolist() == list(range(100, 106))
    assert ak.all(arrays["nDraw"] == 3)
    assert arrays["Draw_nObject"].tolist() == (mask.sum(-1) - 1).tolist()
    back = draw_objects(arrays)
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(back.pt, axis=None)),
        ak.to_numpy(ak.flatten(rec.objects.pt, axis=None)),
        rtol=1e-6,
    )
    assert ak.all(back["type"] == rec.objects["type"])
    assert ak.all(back.draw == ak.local_index(back, axis=1))
    np.testing.assert_allclose(arrays["Draw_met"].to_numpy(), values[:, :, 0, 0], rtol=1e-6)

    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    class Schema(NanoAODSchema):
        error_missing_event_ids = False

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = NanoEventsFactory.from_root(
            {str(path): "Unfolded"}, schemaclass=Schema, mode="eager"
        ).events()
    assert ak.all(draw_objects(events).pt == back.pt)
    assert set(events.Draw.fields) >= {"met", "nObject", "nu_pt"}
