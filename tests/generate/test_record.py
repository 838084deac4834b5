"""Hard-process chain finding and particle-record helpers on hand-made records."""

from __future__ import annotations

import numpy as np
import pytest

from hepvld.generate.record import (
    GENPART_MOTHERS,
    ParticleRecord,
    find_decay_chain,
    hard_process,
    has_quark,
    is_hadron,
)


def _process_record(leptonic_charge: int, shuffle: bool) -> np.ndarray:
    """A Pythia-like process record (id, status, mother1, mother2, px, py, pz, e, m)."""
    wp_daughters = [(-11, 12), (2, -1)][leptonic_charge < 0]
    wm_daughters = [(1, -2), (13, -14)][leptonic_charge < 0]
    rows = [
        (90, -11, 0), (2212, -12, 0), (2212, -12, 0), (21, -21, 1), (21, -21, 2),
        (6, -22, 3), (-6, -22, 3),
        (24, -22, 5), (5, 23, 5), (-24, -22, 6), (-5, 23, 6),
        (wp_daughters[0], 23, 7), (wp_daughters[1], 23, 7),
        (wm_daughters[0], 23, 9), (wm_daughters[1], 23, 9),
    ]  # fmt: skip
    table = np.zeros((len(rows), 9))
    table[:, :3] = rows
    table[:, 4:8] = np.arange(len(rows) * 4).reshape(-1, 4)  # distinct fake momenta
    if shuffle:  # same record, other positions: links must be followed, not positions
        order = np.array([0, 1, 2, 3, 4, 6, 5, 10, 9, 8, 7, 14, 13, 12, 11])
        new_of_old = np.argsort(order)
        table = table[order]
        table[:, 2] = np.where(table[:, 2] > 0, new_of_old[table[:, 2].astype(int)], 0)
    return table


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("charge", [1, -1])
def test_find_decay_chain(charge: int, shuffle: bool) -> None:
    rows = _process_record(charge, shuffle)
    found = find_decay_chain(rows)
    assert found is not None
    indices, leptonic_charge = found
    assert leptonic_charge == charge
    ids = rows[indices, 0].astype(int)
    assert list(ids[:6]) == [6, -6, 24, 5, -24, -5]
    assert ids[6] > 0 and ids[7] < 0 and ids[8] > 0 and ids[9] < 0  # fermion first
    mothers = rows[indices, 2].astype(int)
    for child, mother in enumerate(GENPART_MOTHERS):
        if mother >= 0:
            assert mothers[child] == indices[mother]


def test_find_decay_chain_rejects_dileptonic() -> None:
    rows = _process_record(1, False)
    rows[13:15, 0] = (13, -14)  # W- -> mu nu as well
    assert find_decay_chain(rows) is None
    rows = _process_record(1, False)
    assert find_decay_chain(rows[rows[:, 0] != 5]) is None  # no b


def test_hard_process_layout() -> None:
    hard = hard_process([_process_record(1, True), _process_record(-1, False)[:5]])
    assert list(hard.valid) == [True, False]
    assert list(hard.leptonic_charge) == [1, 0]
    genpart = hard.genpart()
    assert genpart.fields == [
        "pt",
        "eta",
        "phi",
        "mass",
        "pdgId",
        "status",
        "statusFlags",
        "genPartIdxMother",
    ]
    assert genpart["pdgId"][0].tolist()[:6] == [6, -6, 24, 5, -24, -5]
    assert genpart["status"][0].tolist() == [22, 22, 22, 23, 22, 23, 23, 23, 23, 23]


def test_hadron_classification() -> None:
    pid = np.array([5, 21, 11, 22, 2101, 5101, 211, -511, 521, 5122, 443, 100553, 421, -4122, 130])
    assert is_hadron(pid).tolist() == [False] * 6 + [True] * 9
    b = is_hadron(pid) & has_quark(pid, 5)
    c = is_hadron(pid) & has_quark(pid, 4)
    assert pid[b].tolist() == [-511, 521, 5122, 100553]
    assert pid[c].tolist() == [443, 421, -4122]


def test_any_in_daughters() -> None:
    # One event: 0 -> (1, 2); 2 -> 3; 4 has daughters 5 and 3 (swapped order); 5 none.
    n = 6
    rec = ParticleRecord(
        offsets=np.array([0, n]),
        pid=np.zeros(n, dtype=np.int32),
        status=np.ones(n, dtype=np.int32),
        mother1=np.full(n, -1),
        daughter1=np.array([1, -1, 3, -1, 5, -1]),
        daughter2=np.array([2, -1, -1, -1, 3, -1]),
        px=np.ones(n),
        py=np.zeros(n),
        pz=np.zeros(n),
        e=np.ones(n),
        charge=np.zeros(n),
    )
    flag = np.array([False, False, False, True, False, False])
    assert rec.any_in_daughters(flag).tolist() == [False, False, True, False, True, False]
