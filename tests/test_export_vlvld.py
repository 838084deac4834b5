"""torch.export of a variable-length (VL-VLD, particle-level) model: the program returns the
values, the slot mask, the drawn multiplicity and the types, takes every random number as
an input, and reproduces ``sample`` / ``hepvld.unfold`` (the discrete draws exactly, the
values to float rounding; dynamic B, 0 included, and S); the coffea wrapper gives the
same draws."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

import hepvld
from hepvld.api import event_noise, step_noise
from hepvld.diffusion import SamplerSpec
from hepvld.export import ExportableSampler, export_sampler, load_exported
from hepvld.features import detector_tensors
from hepvld.models import build_model, model_config
from hepvld.models.vlvld import VLVLD
from hepvld.targets import get_level
from hepvld.testing.particle import fake_particle_values

MAX_OBJECTS = 8
K = 1 + MAX_OBJECTS
MAX_JETS, F, G = 5, 12, 2


def _network(name: str = "c-vl-vld", latent: int = 4, **over: object) -> VLVLD:
    """An untrained VL-VLD on the real particle level (detector phase space: the
    composition draw is restricted), affine fitted on fake particle-level values."""
    level = get_level("particle", {"max_objects": MAX_OBJECTS})
    values, mask = fake_particle_values(np.random.default_rng(0), (64,), MAX_OBJECTS)
    shift, scale = level.preprocessing().fit(values, mask).affine()
    torch.manual_seed(0)
    cfg = model_config("tiny", vlvld_latent_dim=latent, **over)  # type: ignore[arg-type]
    net = build_model(
        name,
        cfg,
        object_features=F,
        global_features=G,
        level=level,
        target_shift=shift,
        target_scale=scale,
    )
    assert isinstance(net, VLVLD)
    return net.eval()


def _inputs(net: VLVLD, b: int, s: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(b, 1 + MAX_JETS, generator=gen) > 0.3
    return (
        torch.randn(b, 1 + MAX_JETS, F, generator=gen),
        mask,
        torch.randn(b, G, generator=gen),
        torch.randn(b, s, *net.noise_shape, generator=gen),
    )


def _step_noise(net: VLVLD, b: int, s: int, steps: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(100 + seed)
    return torch.randn(b, s, steps, *net.noise_shape, generator=gen)


def _check_outputs(net: VLVLD, out: tuple[torch.Tensor, ...], ref_values, ref_mask) -> None:
    values, mask, n_objects, types = out
    b, s = ref_mask.shape[:2]
    assert values.shape == (b, s, K * 9) and mask.shape == (b, s, K)
    assert n_objects.shape == (b, s) and types.shape == (b, s, K - 1)
    assert n_objects.dtype == torch.int64 and types.dtype == torch.int64
    # the same code path as sample: the discrete draws identical, the values to float
    # rounding (the traced attention may take another kernel than eager: measured ≤ 1e-5
    # on a trained small model, 0 on these tiny ones)
    torch.testing.assert_close(values, ref_values.flatten(2), rtol=1e-5, atol=1e-5)
    assert torch.equal(mask, ref_mask)
    assert torch.equal(n_objects, ref_mask[..., 1:].sum(-1))
    real = ref_mask[..., 1:]
    one_hot = ref_values[..., 1:, net.type_columns].argmax(-1)
    assert torch.equal(types[real], one_hot[real])
    assert (types[~real] == -1).all()


@pytest.fixture(scope="module")
def exported() -> tuple[VLVLD, torch.export.ExportedProgram]:
    """A c-vl-vld network and its program (dpmpp2m, 3 steps, preprocessed units)."""
    net = _network("c-vl-vld")
    return net, export_sampler(net, sampler="dpmpp2m", steps=3, physical=False, max_jets=MAX_JETS)


def _reproduces_sample(net: VLVLD, program: torch.export.ExportedProgram) -> None:
    spec = SamplerSpec("dpmpp2m", 3)
    module = program.module()
    for b, s in ((5, 3), (0, 2), (1, 1), (7, 4)):
        args = _inputs(net, b, s, seed=b)
        ref = net.sample(*args[:3], n_samples=s, sampler=spec, noise=args[3])
        with torch.no_grad():
            out = module(*args)
        _check_outputs(net, out, ref.values, ref.mask)
        if b * s >= 4:  # the multiplicity varies between draws: the mask is really an output
            assert len(torch.unique(out[2])) > 1


def test_export_reproduces_sample(
    exported: tuple[VLVLD, torch.export.ExportedProgram],
) -> None:
    _reproduces_sample(*exported)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vl-vld", "uc-vl-vld"])
def test_every_family_exports(name: str) -> None:
    net = _network(name)
    program = export_sampler(net, sampler="dpmpp2m", steps=3, physical=False, max_jets=MAX_JETS)
    _reproduces_sample(net, program)


def test_the_multiplicity_and_composition_inputs_are_row_k_of_the_noise(
    exported: tuple[VLVLD, torch.export.ExportedProgram],
) -> None:
    """Changing only row K (the discrete draws' random numbers) changes n and the
    composition; changing only a padded slot's noise changes nothing."""
    net, program = exported
    module = program.module()
    args = _inputs(net, 16, 2, seed=3)
    noise = args[3]
    with torch.no_grad():
        base = module(*args)
        other = noise.clone()
        gen = torch.Generator().manual_seed(9)
        other[..., K, :] = torch.randn(other[..., K, :].shape, generator=gen)
        moved = module(*args[:3], other)
        padded = noise.clone()
        pad = ~base[1]  # (B, S, K) padded slots
        padded[..., :K, :][pad] += 5.0
        same = module(*args[:3], padded)
    assert not torch.equal(base[2], moved[2])
    counts = [(t == c).sum(-1) for t in (base[3], moved[3]) for c in (0, 2, 3)]
    assert any(not torch.equal(a, b) for a, b in zip(counts[:3], counts[3:], strict=True))
    for a, b in zip(base, same, strict=True):
        assert torch.equal(a, b)


def test_ddpm_takes_its_per_step_noise_as_an_input() -> None:
    net = _network("uc-vl-vld", latent=1)  # D = 1: the composition uses the residual
    steps = 3
    program = export_sampler(net, sampler="ddpm", steps=steps, physical=False, max_jets=MAX_JETS)
    for b, s in ((4, 2), (0, 1)):
        args = _inputs(net, b, s, seed=b)
        xi = _step_noise(net, b, s, steps, seed=b)
        ref = net.sample(
            *args[:3],
            n_samples=s,
            sampler=SamplerSpec("ddpm", steps),
            noise=args[3],
            step_noise=lambda i, shape, xi=xi: xi[:, :, i],
        )
        with torch.no_grad():
            out = program.module()(*args, xi)
        _check_outputs(net, out, ref.values, ref.mask)
    wrapper = ExportableSampler(net, sampler="ddpm", steps=steps)
    with pytest.raises(ValueError, match="step_noise is needed"), torch.no_grad():
        wrapper(*_inputs(net, 2, 1))
    with pytest.raises(ValueError, match="only for a stochastic"), torch.no_grad():
        ExportableSampler(net, sampler="ddim", steps=steps)(*_inputs(net, 2, 1), xi)


# ------------------------------------------------------------ a trained particle-level run
TRAIN_ARGS = [
    "--model",
    "c-vl-vld",
    "--preset",
    "tiny",
    "--train.batch-size",
    "64",
    "--train.warmup-steps",
    "2",
    "--train.device",
    "cpu",
    "--train.epochs",
    "1",
    "--model.vlvld-latent-dim",
    "4",
]


@pytest.fixture(scope="module")
def particle_run(tiny_root_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hepvld.cli.train import main as train_main

    run_dir = tmp_path_factory.mktemp("runs") / "c-vl-vld"
    assert train_main([str(tiny_root_file), "--run-dir", str(run_dir), *TRAIN_ARGS]) == 0
    return run_dir


@pytest.mark.parametrize("sampler", ["ddpm", pytest.param("dpmpp2m", marks=pytest.mark.slow)])
def test_physical_export_and_coffea_wrapper_match_unfold(
    sampler: str, particle_run: Path, tiny_root_file: Path, tmp_path: Path
) -> None:
    from hepvld.export import VLDTorchWrapper
    from hepvld.features import select
    from hepvld.io import open_events

    model = hepvld.load(particle_run)
    events = open_events(tiny_root_file)
    events = events[np.asarray(select(events, require_truth=False)[0])][:30]
    path = tmp_path / "particle.pt2"
    export_sampler(model, sampler=sampler, steps=2, path=path)
    program, meta = load_exported(path)
    assert meta["stochastic"] == (sampler == "ddpm") and meta["variable_length"]
    ref = hepvld.unfold(
        events, model=model, n_samples=3, sampler=sampler, steps=2, seed=5, raw=True
    )
    ref_values = ak.to_numpy(ref.raw)
    ref_mask = ak.to_numpy(ref.raw_mask)

    det = detector_tensors(events, max_jets=model.max_jets)
    numbers = ak.to_numpy(events.event).astype(np.uint64)
    shape = (3, *model.model.noise_shape)
    args = [
        torch.as_tensor(det.objects),
        torch.as_tensor(det.mask),
        torch.as_tensor(det.globals),
        event_noise(5, numbers, shape),
    ]
    if sampler == "ddpm":
        per_step = step_noise(5, numbers)
        args.append(torch.stack([per_step(i, (len(numbers), *shape)) for i in range(2)], 2))
    with torch.no_grad():
        values, mask, n_objects, types = program.module()(*args)
    # physical units (GeV): float rounding of the network, as for the fixed level
    np.testing.assert_allclose(values.numpy(), ref_values, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(mask.numpy(), ref_mask)
    np.testing.assert_array_equal(n_objects.numpy(), ak.to_numpy(ak.num(ref["objects"], axis=-1)))
    # the program's types are the records' types (these are pT-ordered: compare as sets)
    slots = model.model.n_slots
    drawn = np.sort(np.where(types.numpy() >= 0, types.numpy(), 99), axis=-1)
    rec = ak.to_numpy(ak.fill_none(ak.pad_none(ref["objects"]["type"], slots - 1, axis=-1), 99))
    np.testing.assert_array_equal(drawn, np.sort(rec, axis=-1))

    # coffea.ml_tools wrapper: picklable (no model inside), the same draws, empty input
    wrapper = pickle.loads(pickle.dumps(VLDTorchWrapper(path, n_samples=3, seed=5)))
    assert b"torch.nn" not in pickle.dumps(wrapper)
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Missing cross-reference", category=RuntimeWarning
        )
        out = wrapper(events)
        empty = wrapper(events[:0])
    assert ak.fields(out) == ["values", "mask", "n_objects", "types"]
    np.testing.assert_allclose(ak.to_numpy(out["values"]), ref_values, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(ak.to_numpy(out["mask"]), ref_mask)
    assert ak.to_numpy(empty["values"]).shape == (0, 3, slots * 9)
    assert ak.to_numpy(empty["n_objects"]).shape == (0, 3)
    records = model.level.to_records(
        ak.to_numpy(out["values"]).reshape(*ref_mask.shape, -1), ak.to_numpy(out["mask"])
    )
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(records["objects"].px, axis=None)),
        ak.to_numpy(ak.flatten(ref["objects"].px, axis=None)),
        rtol=1e-5,
        atol=1e-3,
    )
