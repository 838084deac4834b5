"""The parton level implements the TargetLevel contract (docs/architecture.md)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch

from hepvld.physics import PARTONS, parton_targets
from hepvld.targets import (
    LEVELS,
    PARTON,
    TargetLevel,
    TargetPreprocessing,
    get_level,
    level_from_meta,
    register_level,
)
from hepvld.testing.synthetic import toy_events


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return toy_events(60, seed=3)


def test_protocol_registry_and_checkpoint_names() -> None:
    assert isinstance(PARTON, TargetLevel) and LEVELS["parton"]() is PARTON
    assert get_level("parton") is PARTON and get_level(PARTON) is PARTON
    assert level_from_meta({}) is PARTON  # checkpoints from before levels existed
    assert level_from_meta({"target_level": "parton", "target_options": {}}) is PARTON
    with pytest.raises(ValueError, match="registered"):
        get_level("particle-typo")
    with pytest.raises(ValueError, match=r"tops='last'; choose from \('hard', 'after_isr'\)"):
        get_level("parton", {"tops": "last"})
    with pytest.raises(ValueError, match="no options"):
        get_level("parton", {"top": "after_isr"})
    with pytest.raises(ValueError, match="twice"):
        register_level("parton")(lambda: PARTON)
    assert PARTON.shape == (11, 5) and PARTON.fixed_multiplicity and PARTON.options() == {}


def test_build_preprocess_and_records(events: ak.Array) -> None:
    t = PARTON.build(events)
    flat = parton_targets(events)
    assert t.values.shape == (60, 11, 5) and t.mask.all() and (t.multiplicity == 11).all()
    np.testing.assert_array_equal(PARTON.flat(t.values), flat)
    assert PARTON.empty().values.shape == (0, 11, 5) and len(PARTON.build(events[:0])) == 0
    pre = PARTON.preprocessing().fit(t.values, t.mask)
    assert isinstance(pre, TargetPreprocessing)
    z = pre.transform(t.values, t.mask)
    np.testing.assert_allclose(z.reshape(60, -1).mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(pre.inverse_transform(z, t.mask), t.values, rtol=1e-5, atol=1e-3)
    again = PARTON.preprocessing(pre.state_dict())  # the JSON state round trip
    shift, scale = again.affine()
    np.testing.assert_allclose(t.values, z * scale + shift, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(
        again.transform(torch.as_tensor(t.values), None), torch.as_tensor(z), rtol=1e-5, atol=1e-5
    )
    records = PARTON.to_records(t.values[:, None], t.mask[:, None])  # (B, S=1, 11, 5)
    assert ak.fields(records) == list(PARTONS)
    np.testing.assert_allclose(
        ak.to_numpy(records.t_had.mass)[:, 0], flat[:, PARTON.index("t_had", "M")], rtol=1e-6
    )
    branches = PARTON.output_branches(records)
    assert list(branches)[:4] == ["b_lep_pt", "b_lep_eta", "b_lep_phi", "b_lep_mass"]
    assert len(branches) == 44 and ak.to_list(ak.num(branches["ttbar_mass"], axis=1)) == [1] * 60


def test_consistency_is_the_summed_mass_shell_residual(events: ak.Array) -> None:
    x = torch.as_tensor(PARTON.build(events).values, dtype=torch.float64)
    on_shell = PARTON.consistency(x, None, scale=100.0)
    assert on_shell.shape == (60,) and float(on_shell.max()) < 1e-3
    off = x.clone()
    off[:, :, 0] += 10.0  # every mass 10 GeV too high
    m = x[..., 0]
    want = ((m + 10.0) ** 2 - m**2).sum(-1) / 100.0**2
    torch.testing.assert_close(
        PARTON.consistency(off, None, scale=100.0), want, rtol=1e-3, atol=1e-4
    )
