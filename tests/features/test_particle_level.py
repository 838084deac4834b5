from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hepvld.features import PARTICLE_FEATURES, particle_level_tensors
from hepvld.io import MissingBranchError
from hepvld.testing.synthetic import toy_events


def test_particle_level_tensors() -> None:
    ev = toy_events(300, seed=9, decay=["semileptonic"] * 9 + ["tau"])
    p = particle_level_tensors(ev, max_jets=8)
    B = len(ev)
    assert p.objects.shape == (B, 10, len(PARTICLE_FEATURES)) and p.mask.shape == (B, 10)
    np.testing.assert_array_equal(p.multiplicity, p.mask.sum(1))
    assert (p.objects[~p.mask] == 0).all()
    types = p.objects[..., 5:]
    assert (types.sum(-1) == p.mask).all()
    # exactly one neutrino in semi-leptonic events, none for tau events
    n_nu = types[..., 4].sum(1)
    assert (n_nu[np.arange(B) % 10 != 9] == 1).all() and (n_nu[np.arange(B) % 10 == 9] == 0).all()
    pt = np.hypot(p.objects[..., 0], p.objects[..., 1])
    assert (np.diff(np.where(p.mask, pt, -1), axis=1) <= 1e-3).all()  # ordered by pT
    E = np.exp(p.objects[..., 3]) - 1
    M = np.exp(p.objects[..., 4]) - 1
    p2 = (p.objects[..., :3].astype(np.float64) ** 2).sum(-1)
    np.testing.assert_allclose((E**2 - p2)[p.mask], (M**2)[p.mask], atol=1.0, rtol=1e-3)
    np.testing.assert_allclose(p.globals[:, 0], ak.to_numpy(ev.GenMET.pt))


def test_particle_level_empty_and_missing() -> None:
    ev = toy_events(0)
    p = particle_level_tensors(ev)
    assert p.objects.shape == (0, 22, 10) and p.multiplicity.shape == (0,)
    with pytest.raises(MissingBranchError, match="GenJet"):
        particle_level_tensors(toy_events(2)[["Jet", "GenPart"]])
