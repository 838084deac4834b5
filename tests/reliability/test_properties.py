"""Property-based tests (hypothesis): random event arrays with random multiplicities and
edge-case floats through readers, features, preprocessing, the models and ``unfold``.

Examples are few and derandomised (the same every run, so CI is reproducible); the
properties are exact or within float32 tolerance.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import hepvld  # noqa: E402
from hepvld.diffusion import SamplerSpec  # noqa: E402
from hepvld.features import DetectorPreprocessor, detector_tensors, select  # noqa: E402
from hepvld.io import open_events  # noqa: E402
from hepvld.models import MODELS, build_model, model_config  # noqa: E402
from hepvld.models.registry import family_level  # noqa: E402
from hepvld.testing.synthetic import write_root  # noqa: E402

FAST = settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# edge floats: the cut thresholds exactly, zero, subnormal-small, large but physical
PT = st.one_of(
    st.sampled_from([0.0, 1e-30, 25.0, np.nextafter(25.0, 30.0), 6500.0]),
    st.floats(0.0, 2000.0),
)
ETA = st.one_of(st.sampled_from([0.0, 2.5, -2.5, 4.99]), st.floats(-5.0, 5.0))
PHI = st.one_of(st.sampled_from([np.pi, -np.pi, 0.0]), st.floats(-3.14159, 3.14159))
MASS = st.one_of(st.sampled_from([0.0, 1e-6]), st.floats(0.0, 200.0))


@st.composite
def collection(draw, n_events: int, max_n: int, extra: dict | None = None) -> ak.Array:
    """A jagged collection: random multiplicities 0..max_n, edge-case float values."""
    counts = np.asarray(draw(st.lists(st.integers(0, max_n), min_size=n_events, max_size=n_events)))
    total = int(counts.sum())

    def column(strategy, dtype):
        values = draw(st.lists(strategy, min_size=total, max_size=total))
        return ak.unflatten(np.asarray(values, dtype=dtype), counts)

    fields = {
        "pt": column(PT, np.float32),
        "eta": column(ETA, np.float32),
        "phi": column(PHI, np.float32),
        "mass": column(MASS, np.float32),
    }
    for key, (strategy, dtype) in (extra or {}).items():
        fields[key] = column(strategy, dtype)
    return ak.zip(fields)


@st.composite
def event_arrays(draw, max_events: int = 12) -> ak.Array:
    """NanoAOD-like detector-level events (no truth) with random content."""
    n = draw(st.integers(1, max_events))
    iso = (st.floats(0.0, 0.5), np.float32)
    charge = (st.sampled_from([-1, 1]), np.int32)
    met = draw(st.lists(st.tuples(PT, PHI), min_size=n, max_size=n))
    return ak.zip(
        {
            "event": np.arange(n, dtype=np.uint64) * 7 + 3,
            "genWeight": np.ones(n, np.float32),
            "Jet": draw(collection(n, 25, {"btagged": (st.booleans(), bool)})),
            "Electron": draw(collection(n, 2, {"charge": charge, "pfRelIso03_all": iso})),
            "Muon": draw(collection(n, 2, {"charge": charge, "pfRelIso04_all": iso})),
            "MET": ak.zip(
                {
                    "pt": np.asarray([m[0] for m in met], np.float32),
                    "phi": np.asarray([m[1] for m in met], np.float32),
                }
            ),
        },
        depth_limit=1,
    )


def _flat(events: ak.Array) -> ak.Array:
    """The same events as flat uproot-style branches (Jet_pt, nJet, MET_pt, ...)."""
    out = {"event": events.event, "genWeight": events.genWeight}
    for name in ("Jet", "Electron", "Muon"):
        out[f"n{name}"] = ak.num(events[name])
        for f in ak.fields(events[name]):
            out[f"{name}_{f}"] = events[name][f]
    out["MET_pt"], out["MET_phi"] = events.MET.pt, events.MET.phi
    return ak.zip(out, depth_limit=1)


def _same(a: ak.Array, b: ak.Array) -> None:
    for name in ("Jet", "Electron", "Muon"):
        for f in ("pt", "eta", "phi", "mass"):
            assert ak.to_list(a[name][f]) == ak.to_list(b[name][f]), (name, f)
    assert ak.to_list(a.MET.pt) == ak.to_list(b.MET.pt)
    assert ak.to_list(a.event) == ak.to_list(b.event)


@FAST
@given(event_arrays())
def test_zipped_flat_and_file_inputs_read_identically(events: ak.Array) -> None:
    zipped = open_events(events)
    _same(zipped, open_events(_flat(events)))
    assert len(zipped) == len(events)


@settings(
    max_examples=6,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(event_arrays(max_events=6))
def test_root_file_round_trip(tmp_path_factory: pytest.TempPathFactory, events: ak.Array) -> None:
    path = Path(tmp_path_factory.mktemp("prop")) / "p.root"
    write_root(str(path), events)
    _same(open_events(events), open_events(path))
    with uproot.open(path) as f:
        _same(open_events(events), open_events(f["Events"].arrays()))


@FAST
@given(event_arrays())
def test_features_preprocessing_round_trip(events: ak.Array) -> None:
    det = detector_tensors(open_events(events), max_jets=20)
    assert np.isfinite(det.objects).all() and np.isfinite(det.globals).all()
    assert not det.objects[~det.mask].any()  # padding exactly zero
    if det.mask.sum() == 0:
        return
    pre = DetectorPreprocessor().fit(det.objects, det.mask, det.globals)
    o, g = pre.transform(det.objects, det.mask, det.globals)
    assert np.isfinite(o).all() and np.isfinite(g).all()
    back_o, back_g = pre.inverse_transform(o, det.mask, g)
    scale = np.maximum(np.abs(det.objects), 1.0)
    assert np.all(np.abs(back_o - det.objects)[det.mask] <= 2e-4 * scale[det.mask])
    np.testing.assert_allclose(back_g, det.globals, rtol=2e-4, atol=2e-4)


@FAST
@given(event_arrays())
def test_cutflow_accounts_for_every_event(events: ak.Array) -> None:
    ev = open_events(events)
    mask, cutflow = select(ev)
    assert cutflow.total == len(ev) and cutflow.passed == int(mask.sum())
    assert all(a >= b for a, b in zip(cutflow.counts, cutflow.counts[1:]))
    rejected = [a - b for a, b in zip(cutflow.counts, cutflow.counts[1:])]
    assert cutflow.passed + sum(rejected) == len(ev)  # selected + rejected = input


@pytest.fixture(scope="module")
def unfolder(toy_run: Path):
    return hepvld.load(toy_run)


@settings(
    max_examples=8,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(event_arrays())
def test_unfold_one_entry_per_event_and_finite(unfolder, events: ak.Array) -> None:
    out = hepvld.unfold(events, model=unfolder, n_samples=2, steps=2, sampler="ddim", raw=True)
    cutflow = out.attrs["cutflow"]
    assert len(out) == len(events) == cutflow.total
    assert int(ak.sum(~ak.is_none(out))) == cutflow.passed
    raw = ak.to_numpy(ak.flatten(ak.drop_none(out).raw, axis=None)) if cutflow.passed else []
    assert np.isfinite(raw).all()


# ------------------------------------------------------------------- model invariances
_MODELS: dict[str, torch.nn.Module] = {}


def _model(name: str) -> torch.nn.Module:
    if name not in _MODELS:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            cfg = model_config("tiny", **({"variant": name} if name.endswith("vld") else {}))
            _MODELS[name] = build_model(name, cfg, object_features=12, global_features=2).eval()
    return _MODELS[name]


@st.composite
def padded_inputs(draw):
    b = draw(st.integers(1, 3))
    n = draw(st.integers(2, 6))
    floats = st.floats(-3.0, 3.0, width=32)
    from hypothesis.extra.numpy import arrays

    obj = draw(arrays(np.float32, (b, n, 12), elements=floats))
    mask = draw(arrays(np.bool_, (b, n)))
    mask[:, 0] = True  # at least one object per event
    glob = draw(arrays(np.float32, (b, 2), elements=floats))
    perm = draw(st.permutations(range(n)))
    pad = draw(st.integers(1, 4))
    garbage = draw(arrays(np.float32, (b, pad, 12), elements=st.floats(-1e3, 1e3, width=32)))
    return obj, mask, glob, np.asarray(perm), garbage


@pytest.mark.parametrize("name", sorted(name for name in MODELS if family_level(name) == "parton"))
@settings(max_examples=8, derandomize=True, deadline=None)
@given(padded_inputs())
def test_padding_and_object_order_never_change_the_output(name: str, inputs) -> None:
    obj, mask, glob, perm, garbage = inputs
    model = _model(name)
    b = mask.shape[0]
    obj = np.where(mask[..., None], obj, 0.0).astype(np.float32)
    noise = torch.randn((b, 2, *model.noise_shape), generator=torch.Generator().manual_seed(1))

    def run(o: np.ndarray, m: np.ndarray) -> torch.Tensor:
        return model.sample(
            torch.from_numpy(o),
            torch.from_numpy(m),
            torch.from_numpy(glob),
            n_samples=2,
            sampler=SamplerSpec("ddim", steps=2),
            noise=noise.clone(),
            generator=torch.Generator().manual_seed(2),
        ).values

    ref = run(obj, mask)
    permuted = run(np.ascontiguousarray(obj[:, perm]), np.ascontiguousarray(mask[:, perm]))
    padded = run(
        np.concatenate([obj, garbage], axis=1),
        np.concatenate([mask, np.zeros((b, len(garbage[0])), bool)], axis=1),
    )
    assert torch.isfinite(ref).all()
    torch.testing.assert_close(permuted, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(padded, ref, rtol=1e-4, atol=1e-4)
