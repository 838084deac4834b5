from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hepvld.features import DetectorPreprocessor, TargetPreprocessor, detector_tensors, select
from hepvld.physics import parton_targets, target_index
from hepvld.testing.synthetic import toy_events


@pytest.fixture(scope="module")
def data() -> tuple:
    ev = toy_events(1500, seed=4)
    ev = ev[select(ev)[0]]
    return detector_tensors(ev), parton_targets(ev)


def test_target_round_trip_and_zero_spread(data: tuple) -> None:
    _, x = data
    pre = TargetPreprocessor().fit(x)
    z = pre.transform(x)
    assert np.isfinite(z).all()
    # constant components (b mass, tt̄ px/py) use the floor: no division by ~0
    for p, c in [("b_lep", "M"), ("ttbar", "px"), ("ttbar", "py"), ("nu", "M")]:
        i = target_index(p, c)
        assert pre.scale[i] >= 1e-2 and np.abs(z[:, i]).max() < 1.0
    free = target_index("t_had", "pz")
    assert abs(z[:, free].mean()) < 1e-5 and abs(z[:, free].std() - 1) < 1e-4
    np.testing.assert_allclose(pre.inverse_transform(z), x, rtol=1e-5, atol=1e-3)
    # (B, S, X) draws
    zz = np.repeat(z[:, None], 3, axis=1)
    assert pre.inverse_transform(zz).shape == (len(x), 3, 55)
    const = np.ones((10, 55), np.float32) * 3.0
    zc = TargetPreprocessor().fit(const).transform(const)
    assert np.isfinite(zc).all() and (zc == 0).all()


def test_target_state_dict_json(data: tuple) -> None:
    _, x = data
    pre = TargetPreprocessor().fit(x)
    back = TargetPreprocessor.from_state_dict(json.loads(json.dumps(pre.state_dict())))
    np.testing.assert_array_equal(back.transform(x), pre.transform(x))
    with pytest.raises(RuntimeError, match="not fitted"):
        TargetPreprocessor().transform(x)
    with pytest.raises(ValueError, match="0 entries"):
        TargetPreprocessor().fit(x[:0])
    with pytest.raises(ValueError, match="DetectorPreprocessor"):
        TargetPreprocessor.from_state_dict({**pre.state_dict(), "type": "DetectorPreprocessor"})


def test_detector_round_trip(data: tuple) -> None:
    d, _ = data
    pre = DetectorPreprocessor().fit(d.objects, d.mask, d.globals)
    o, g = pre.transform(d.objects, d.mask, d.globals)
    assert o.shape == d.objects.shape and g.shape == d.globals.shape
    assert (o[~d.mask] == 0).all()
    cont = o[d.mask][:, :8]
    np.testing.assert_allclose(cont.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(cont.std(0), 1, atol=1e-3)
    np.testing.assert_array_equal(o[..., 8:], d.objects[..., 8:])  # one-hot untouched
    o2, g2 = pre.inverse_transform(o, d.mask, g)
    np.testing.assert_allclose(o2, d.objects, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(g2, d.globals, rtol=1e-4, atol=1e-3)
    back = DetectorPreprocessor.from_state_dict(json.loads(json.dumps(pre.state_dict())))
    np.testing.assert_array_equal(back.transform(d.objects, d.mask, d.globals)[0], o)


def test_padding_garbage_changes_nothing(data: tuple) -> None:
    d, _ = data
    rng = np.random.default_rng(0)
    garbage = d.objects.copy()
    garbage[~d.mask] = rng.normal(1e3, 1e3, (int((~d.mask).sum()), 12))
    ref = DetectorPreprocessor().fit(d.objects, d.mask, d.globals)
    pre = DetectorPreprocessor().fit(garbage, d.mask, d.globals)
    np.testing.assert_array_equal(pre.obj_mean, ref.obj_mean)
    np.testing.assert_array_equal(pre.obj_scale, ref.obj_scale)
    o_ref, _ = ref.transform(d.objects, d.mask, d.globals)
    o, _ = pre.transform(garbage, d.mask, d.globals)
    np.testing.assert_array_equal(o, o_ref)


def test_torch_tensors(data: tuple) -> None:
    d, x = data
    tp = TargetPreprocessor().fit(x)
    xt = torch.from_numpy(x)
    zt = tp.transform(xt)
    assert isinstance(zt, torch.Tensor) and zt.dtype == torch.float32
    np.testing.assert_allclose(zt.numpy(), tp.transform(x), rtol=1e-6, atol=1e-6)
    dp = DetectorPreprocessor().fit(d.objects, d.mask, d.globals)
    o, g = dp.transform(
        torch.from_numpy(d.objects), torch.from_numpy(d.mask), torch.from_numpy(d.globals)
    )
    o2, _ = dp.inverse_transform(o, torch.from_numpy(d.mask), g)
    np.testing.assert_allclose(o2.numpy(), d.objects, rtol=1e-4, atol=1e-3)


def test_empty_inputs_transform(data: tuple) -> None:
    d, x = data
    tp = TargetPreprocessor().fit(x)
    assert tp.transform(x[:0]).shape == (0, 55)
    dp = DetectorPreprocessor().fit(d.objects, d.mask, d.globals)
    o, g = dp.transform(d.objects[:0], d.mask[:0], d.globals[:0])
    assert o.shape == (0, 21, 12) and g.shape == (0, 2)
