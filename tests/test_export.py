"""torch.export of encoder + sampler loop: equality with VLD.sample / unfold, empty batches."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

from hepvld.api import UnfoldingModel, event_noise, unfold
from hepvld.diffusion import SamplerSpec
from hepvld.export import ExportableSampler, export_sampler, load_exported
from hepvld.features import DetectorPreprocessor, TargetPreprocessor, detector_tensors, select
from hepvld.io import open_events
from hepvld.models import build_model, model_config
from hepvld.physics import TARGET_DIM, parton_targets

MAX_JETS = 6
F, G = 12, 2


def _network(name: str = "vld", **io: object) -> torch.nn.Module:
    torch.manual_seed(0)  # test-local determinism of the initial weights
    return build_model(
        name, model_config("tiny"), object_features=F, global_features=G, **io
    ).eval()


def _sample(net: torch.nn.Module, *args: torch.Tensor, sampler: str, steps: int) -> torch.Tensor:
    """``net.sample`` with the noise ``args[3]``, values flattened per draw (B, S, 55)."""
    objects, mask, glob, noise = args
    draws = net.sample(
        objects,
        mask,
        glob,
        n_samples=noise.shape[1],
        sampler=SamplerSpec(sampler, steps),
        noise=noise,
    )
    return draws.values.flatten(2)


def _inputs(batch: int, draws: int, noise_dim: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, 1 + MAX_JETS, generator=gen) > 0.3
    return (
        torch.randn(batch, 1 + MAX_JETS, F, generator=gen),
        mask,
        torch.randn(batch, G, generator=gen),
        torch.randn(batch, draws, noise_dim, generator=gen),
    )


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp2m"])
def test_export_reproduces_sample(sampler: str, tmp_path: Path) -> None:
    net = _network()
    path = tmp_path / "vld.pt2"
    program = export_sampler(
        net, sampler=sampler, steps=2, physical=False, max_jets=MAX_JETS, path=path
    )
    objects, mask, glob, noise = _inputs(5, 3, *net.noise_shape)
    ref = _sample(net, objects, mask, glob, noise, sampler=sampler, steps=2)
    with torch.no_grad():
        got = program.module()(objects, mask, glob, noise)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
        # dynamic batch (0 and 1 included) and number of draws
        loaded, meta = load_exported(path)
        assert (
            meta["sampler"] == sampler
            and meta["steps"] == 2
            and tuple(meta["noise_shape"]) == net.noise_shape
        )
        for b, s in ((0, 3), (1, 1), (7, 4)):
            args = _inputs(b, s, *net.noise_shape, seed=b)
            out = loaded.module()(*args)
            assert out.shape == (b, s, TARGET_DIM)
            if b:
                ref = _sample(net, *args, sampler=sampler, steps=2)
                torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_padding_is_ignored() -> None:
    net = _network()
    wrapper = ExportableSampler(net, sampler="ddim", steps=2).eval()
    objects, mask, glob, noise = _inputs(4, 2, *net.noise_shape)
    garbage = torch.where(mask.unsqueeze(-1), objects, torch.full_like(objects, 1e6))
    torch.testing.assert_close(
        wrapper(garbage, mask, glob, noise), wrapper(objects, mask, glob, noise)
    )


@pytest.fixture(scope="module")
def physical_model(tiny_root_file: Path) -> tuple[UnfoldingModel, ak.Array]:
    """An untrained tiny VLD with preprocessing fitted on the tiny file (no training)."""
    events = open_events(tiny_root_file)
    mask, _ = select(events)
    events = events[mask][:40]
    det = detector_tensors(events, max_jets=MAX_JETS)
    det_pre = DetectorPreprocessor().fit(det.objects, det.mask, det.globals)
    tgt_pre = TargetPreprocessor().fit(parton_targets(events))
    net = _network(
        detector_preprocessing=det_pre.state_dict(),
        target_shift=tgt_pre.mean,
        target_scale=tgt_pre.scale,
    )
    model = UnfoldingModel(
        net,
        {
            "model": "vld",
            "max_jets": MAX_JETS,
            "target_dim": TARGET_DIM,
            "detector_preprocessor": det_pre.state_dict(),
            "target_preprocessor": tgt_pre.state_dict(),
        },
    )
    return model, events


def test_physical_export_matches_unfold(
    physical_model: tuple[UnfoldingModel, ak.Array], tmp_path: Path
) -> None:
    model, events = physical_model
    path = tmp_path / "vld.pt2"
    program = export_sampler(model, sampler="dpmpp2m", steps=2, path=path)
    det = detector_tensors(events, max_jets=MAX_JETS)
    numbers = ak.to_numpy(events.event).astype(np.uint64)
    noise = event_noise(5, numbers, (2, *model.model.noise_shape))
    with torch.no_grad():
        got = program.module()(
            torch.as_tensor(det.objects),
            torch.as_tensor(det.mask),
            torch.as_tensor(det.globals),
            noise,
        ).numpy()
    ref = ak.to_numpy(
        unfold(events, model=model, n_samples=2, sampler="dpmpp2m", steps=2, seed=5, raw=True).raw
    )
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-3)

    # coffea.ml_tools wrapper: picklable (no model inside), same draws, empty input
    from hepvld.export import VLDTorchWrapper

    wrapper = pickle.loads(pickle.dumps(VLDTorchWrapper(path, n_samples=2, seed=5)))
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Missing cross-reference", category=RuntimeWarning
        )
        out = ak.to_numpy(wrapper(events))
        empty = ak.to_numpy(wrapper(events[:0]))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-3)
    assert empty.shape == (0, 2, TARGET_DIM)
    assert b"torch.nn" not in pickle.dumps(wrapper)


def test_export_rejects_bad_requests() -> None:
    with pytest.raises(ValueError, match="physical=True"):
        export_sampler(_network(), physical=True, max_jets=MAX_JETS)
    with pytest.raises(ValueError, match="unknown sampler"):
        ExportableSampler(_network(), sampler="euler")
