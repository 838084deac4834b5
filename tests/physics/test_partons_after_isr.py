"""The ``tops="after_isr"`` definition: each top's leaves boosted to its last copy.

Checked on the NanoAOD-like shower history (tops with two recoil copies, hard-process
leaves) and on hepvld's own 12-entry ``GenPart`` (:meth:`HardProcess.genpart` with the
last copies), and refused with a clear message on records without last copies.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hepvld.generate.record import GENPART_LAST_COPY_FLAGS, HardProcess
from hepvld.io import TruthError
from hepvld.physics import decay_chain, parton_targets, target_index
from hepvld.physics.partons import parton_momenta
from hepvld.targets import get_level, level_from_meta
from hepvld.targets.parton import PARTON, PartonLevel
from hepvld.testing.synthetic import nanoaod_history, toy_events, write_root


def _p4(gp: ak.Array) -> np.ndarray:
    """``(B, n, 4)`` px, py, pz, E of a regular GenPart slice."""
    pt, eta, phi, m = (ak.to_numpy(gp[k]).astype(np.float64) for k in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + m**2)], axis=-1)


def _xyze(p4) -> np.ndarray:
    return np.stack([p4.px, p4.py, p4.pz, p4.E], axis=-1)


def _last_tops(gp: ak.Array) -> np.ndarray:
    """``(B, 2, 4)`` of the top copies with no top daughter (t first), found by hand."""
    pdgs, mothers = ak.to_list(gp.pdgId), ak.to_list(gp.genPartIdxMother)
    out = []
    for k, (pdg, mother) in enumerate(zip(pdgs, mothers)):
        row = []
        for pid in (6, -6):
            ends = [
                i
                for i, q in enumerate(pdg)
                if q == pid and not any(m == i and pdg[j] == pid for j, m in enumerate(mother))
            ]
            assert len(ends) == 1
            row.append(_p4(gp[k : k + 1, ends[0] : ends[0] + 1])[0, 0])
        out.append(row)
    return np.asarray(out)


@pytest.fixture(scope="module")
def history() -> ak.Array:
    return nanoaod_history(toy_events(150, seed=5), seed=6)


def test_after_isr_tops_are_the_last_copies(history: ak.Array) -> None:
    hard = parton_momenta(history)
    after = parton_momenta(history, tops="after_isr")
    last = _last_tops(history.GenPart)
    # tt̄ = sum of the last copies (t and t̄, whichever decays leptonically)
    np.testing.assert_allclose(_xyze(after["ttbar"]), last.sum(1), rtol=1e-5, atol=2e-3)
    tops = np.stack([_xyze(after["t_lep"]), _xyze(after["t_had"])], axis=1)
    same = np.isclose(tops[:, 0], last[:, 0], rtol=1e-5, atol=2e-3).all(-1)
    swap = np.isclose(tops[:, 0], last[:, 1], rtol=1e-5, atol=2e-3).all(-1)
    assert (same | swap).all() and same.any() and swap.any()
    # the recoil changes tt̄ pT, not the masses (a boost of each top's decay)
    assert np.abs(hard["ttbar"].pt).max() < 1e-2 < np.median(after["ttbar"].pt)
    for name in ("t_lep", "t_had", "W_lep", "W_had"):
        np.testing.assert_allclose(after[name].mass, hard[name].mass, rtol=1e-4)
    # the decay-angle information of each leaf in its top's frame is unchanged
    for leaf, top in (("lep", "t_lep"), ("q1", "t_had")):
        e_hard = hard[leaf].boost_beta3(-hard[top].to_beta3()).E
        e_after = after[leaf].boost_beta3(-after[top].to_beta3()).E
        np.testing.assert_allclose(e_after, e_hard, rtol=1e-4, atol=1e-3)


def _hard_process(events: ak.Array) -> HardProcess:
    p = _p4(events.GenPart)
    n = len(events)
    return HardProcess(
        valid=np.ones(n, dtype=bool),
        leptonic_charge=np.ones(n, dtype=np.int8),
        pdg_id=ak.to_numpy(events.GenPart.pdgId).astype(np.int32),
        status=ak.to_numpy(events.GenPart.status).astype(np.int32),
        px=p[..., 0],
        py=p[..., 1],
        pz=p[..., 2],
        e=p[..., 3],
        m=ak.to_numpy(events.GenPart.mass).astype(np.float64),
    )


def test_hepvld_genpart_with_last_copies(tmp_path: Path) -> None:
    events = toy_events(120, seed=8)
    hard = _hard_process(events)
    tops = np.stack([np.stack([hard.px, hard.py, hard.pz, hard.e], -1)[:, i] for i in (0, 1)], 1)
    # recoil: the tt̄ system takes a transverse kick, each top keeps its mass
    rng = np.random.default_rng(0)
    kick = rng.normal(0.0, 30.0, size=(len(events), 2))
    last = tops.copy()
    last[:, 0, :2] += kick / 2
    last[:, 1, :2] += kick / 2
    m2 = tops[..., 3] ** 2 - (tops[..., :3] ** 2).sum(-1)
    last[..., 3] = np.sqrt(m2 + (last[..., :3] ** 2).sum(-1))
    gp = hard.genpart(last)
    assert ak.num(gp).tolist() == [12] * len(events)
    assert gp.pdgId[0, 10:].tolist() == [6, -6] and gp.status[0, 10:].tolist() == [62, 62]
    assert gp.genPartIdxMother[0].tolist() == [-1, -1, 0, 0, 1, 1, 2, 2, 4, 4, 0, 1]
    assert gp.statusFlags[0, 10:].tolist() == [GENPART_LAST_COPY_FLAGS] * 2
    assert not (ak.to_numpy(gp.statusFlags[:, :2]) >> 13 & 1).any()  # no longer last copies
    rebuilt = ak.with_field(events, gp, "GenPart")
    # the hard definition ignores the copies; after ISR, tt̄ carries the kick
    np.testing.assert_allclose(
        parton_targets(rebuilt), parton_targets(events), rtol=1e-5, atol=1e-4
    )
    x = parton_targets(rebuilt, tops="after_isr")
    np.testing.assert_allclose(x[:, target_index("ttbar", "px")], kick[:, 0], atol=0.05)
    np.testing.assert_allclose(x[:, target_index("ttbar", "py")], kick[:, 1], atol=0.05)
    # through a ROOT file, as the generator writes it
    path = tmp_path / "last.root"
    write_root(str(path), rebuilt)
    from hepvld.io import open_events

    read = open_events(str(path))
    np.testing.assert_allclose(parton_targets(read, tops="after_isr"), x, rtol=1e-4, atol=0.05)


def test_records_without_last_copies_are_refused(tmp_path: Path) -> None:
    events = toy_events(50, seed=2)  # the hard-process entries only (old hepvld files)
    with pytest.raises(TruthError, match=r"last copies of the tops.*regenerate it"):
        decay_chain(events, tops="after_isr")
    with pytest.raises(ValueError, match=r"tops='before'; choose from \('hard', 'after_isr'\)"):
        decay_chain(events, tops="before")  # type: ignore[arg-type]
    # reading a file: the message names it
    from hepvld.data import load_tensors

    path = tmp_path / "old.root"
    write_root(str(path), events)
    level = get_level("parton", {"tops": "after_isr"})
    with pytest.raises(TruthError, match=r"old\.root.*tree 'Events'.*python -m hepvld.generate"):
        load_tensors(str(path), level=level)


def test_level_option_and_checkpoint_metadata() -> None:
    after = get_level("parton", {"tops": "after_isr"})
    assert isinstance(after, PartonLevel) and after.tops == "after_isr"
    assert after.options() == {"tops": "after_isr"} and PARTON.options() == {}
    meta = {"target_level": "parton", "target_options": after.options()}
    assert level_from_meta(meta) == after and level_from_meta({}) is PARTON
    assert get_level("parton", {"tops": "hard"}) is PARTON
    with pytest.raises(ValueError, match="tops='isr'"):
        get_level("parton", {"tops": "isr"})
    with pytest.raises(ValueError, match=r"no options \['nope'\]"):
        get_level("parton", {"nope": 1})
