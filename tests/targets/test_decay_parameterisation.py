"""The parton level's ``decay`` parameterisation: exact round trips, physics by construction,
options recorded in checkpoints and restored by ``hepvld.load``."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

from hepvld.evaluation import composite_masses, mass_shell_residual, regressed_masses
from hepvld.physics import PARTONS
from hepvld.physics.constants import DERIVED
from hepvld.targets import PARTON, get_level, level_from_meta, model_shape
from hepvld.targets.decay_chain import (
    LEAF_MASSES,
    LEAVES,
    PARAMETERS,
    from_parameters,
    to_parameters,
)
from hepvld.testing.synthetic import toy_events

DECAY = get_level("parton", {"parameterisation": "decay"})


@pytest.fixture(scope="module")
def partons() -> np.ndarray:
    """Physical partons ``(B, 11, 5)`` float64 of toy tt̄ events."""
    return PARTON.build(toy_events(200, seed=5)).values.astype(np.float64)


def random_parameters(n: int, seed: int) -> np.ndarray:
    """Arbitrary parameters: off-table leaf masses, non-unit directions, realistic masses."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, len(PARAMETERS)))
    col = {name: i for i, name in enumerate(PARAMETERS)}
    p[:, col["ttbar/M"]] = rng.uniform(400, 900, n)
    p[:, [col["ttbar/px"], col["ttbar/py"]]] *= 30
    p[:, col["ttbar/pz"]] *= 500
    for r, m in (("t_lep", 173), ("t_had", 173), ("W_lep", 80), ("W_had", 80)):
        p[:, col[f"{r}/M"]] = m + 3 * rng.normal(size=n)
    for leaf in LEAVES:
        p[:, col[f"{leaf}/M"]] = rng.uniform(-0.5, 5.5, n)
    return p


def test_partons_parameters_partons_round_trip(partons: np.ndarray) -> None:
    params = to_parameters(partons)
    assert params.shape == (len(partons), len(PARAMETERS))
    back = from_parameters(params)
    np.testing.assert_allclose(back, partons, rtol=1e-6, atol=2e-3)  # float32 truth
    # and parameters -> partons -> parameters (directions become unit vectors)
    p = random_parameters(300, seed=1)
    again = to_parameters(from_parameters(p))
    decoded = from_parameters(again)
    np.testing.assert_allclose(decoded, from_parameters(p), rtol=1e-9, atol=1e-7)


def test_leaves_on_shell_and_masses_snapped_by_construction() -> None:
    x = from_parameters(random_parameters(500, seed=2))
    leaves = x[:, : len(LEAVES)]
    residual = mass_shell_residual(x.reshape(len(x), -1))[:, : len(LEAVES)]
    np.testing.assert_allclose(residual / np.exp(2 * leaves[..., 1]), 0.0, atol=1e-12)
    for i, leaf in enumerate(LEAVES):
        assert set(np.unique(leaves[:, i, 0])) <= set(LEAF_MASSES[leaf])


def test_composites_are_summed_daughters_with_generated_masses() -> None:
    p = random_parameters(500, seed=3)
    x = from_parameters(p)
    flat = x.reshape(len(x), -1)
    summed, regressed = composite_masses(flat), regressed_masses(flat)
    e = np.exp(x[..., 1])
    for name, leaves in DERIVED.items():
        i = PARTONS.index(name)
        idx = [PARTONS.index(leaf) for leaf in leaves]
        np.testing.assert_allclose(x[:, i, 2:], x[:, idx, 2:].sum(1), rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(e[:, i], e[:, idx].sum(1), rtol=1e-10)
        np.testing.assert_allclose(regressed[name], summed[name], rtol=1e-6, atol=1e-6)
    # the resonance masses are the generated ones (all these masses are allowed)
    for r in ("t_lep", "t_had", "W_lep", "W_had"):
        np.testing.assert_allclose(
            x[:, PARTONS.index(r), 0], p[:, PARAMETERS.index(f"{r}/M")], rtol=1e-8
        )


def test_torch_matches_numpy_and_has_finite_gradients(partons: np.ndarray) -> None:
    params = torch.tensor(to_parameters(partons), requires_grad=True)
    out = from_parameters(params)
    np.testing.assert_allclose(
        out.detach().numpy(), from_parameters(params.detach().numpy()), rtol=1e-9, atol=1e-9
    )
    DECAY.consistency(out, None, scale=100.0).sum().backward()
    assert params.grad is not None and torch.isfinite(params.grad).all()


def test_level_options_shapes_and_preprocessing(partons: np.ndarray) -> None:
    assert DECAY.options() == {"parameterisation": "decay"} and PARTON.options() == {}
    assert level_from_meta({"target_level": "parton", "target_options": DECAY.options()}) == DECAY
    assert DECAY.shape == (11, 5) and model_shape(DECAY) == (1, len(PARAMETERS))
    assert model_shape(PARTON) == (11, 5)
    with pytest.raises(ValueError, match="parameterisation"):
        get_level("parton", {"parameterisation": "helicity"})
    mask = np.ones(partons.shape[:2], bool)
    pre = DECAY.preprocessing().fit(partons, mask)
    z = pre.transform(partons, mask)
    assert z.shape == (len(partons), 1, len(PARAMETERS))
    assert np.abs(z.mean(0)).max() < 1e-6
    state = json.loads(json.dumps(pre.state_dict()))
    again = DECAY.preprocessing(state)
    np.testing.assert_allclose(again.inverse_transform(z, mask), partons, rtol=1e-6, atol=2e-3)
    shift, scale = again.affine()
    assert shift.shape == scale.shape == (1, len(PARAMETERS))
    with pytest.raises(ValueError, match="decay parameterisation"):
        DECAY.preprocessing(PARTON.preprocessing().fit(partons, mask).state_dict())
    odd = partons.copy()
    odd[3, PARTONS.index("b_lep"), 0] = 4.2
    with pytest.raises(ValueError, match="b_lep mass outside"):
        DECAY.preprocessing().fit(odd, mask)


def test_train_records_the_option_and_load_restores_it(
    tiny_root_file: Path, tmp_path: Path
) -> None:
    import hepvld
    from hepvld.cli.train import main

    run = tmp_path / "decay"
    args = [str(tiny_root_file), "--run-dir", str(run), "--preset", "tiny"]
    args += ["--train.max-steps", "3", "--train.batch-size", "64", "--train.device", "cpu"]
    assert main([*args, "--target.parameterisation", "decay"]) == 0
    model = hepvld.load(run)
    assert model.meta["target_options"] == {"parameterisation": "decay"}
    assert model.level == DECAY and model.model.target_shape == (1, len(PARAMETERS))
    out = hepvld.unfold(str(tiny_root_file), model=model, n_samples=2, steps=3, raw=True)
    draws = ak.to_numpy(ak.drop_none(out, axis=0).raw).astype(np.float64)
    assert draws.shape[1:] == (2, 55) and np.isfinite(draws).all()
    summed, regressed = composite_masses(draws), regressed_masses(draws)
    for name in DERIVED:
        np.testing.assert_allclose(regressed[name], summed[name], rtol=1e-3, atol=0.05)
    # resuming with another parameterisation is refused, naming both
    assert main([*args, "--resume", "--target.parameterisation", "components"]) != 0


def test_a_new_run_defaults_to_the_decay_chain_and_old_runs_keep_components(
    tiny_root_file: Path, tmp_path: Path
) -> None:
    import json

    import hepvld
    from hepvld.cli.train import main

    args = [str(tiny_root_file), "--preset", "tiny", "--train.batch-size", "64"]
    args += ["--train.device", "cpu"]
    new = tmp_path / "new"
    assert main([*args, "--run-dir", str(new), "--train.max-steps", "2"]) == 0
    model = hepvld.load(new)
    assert model.name == "c-vld" and model.level == DECAY  # the train CLI's defaults
    old = tmp_path / "old"
    assert main([*args, "--run-dir", str(old), "--train.max-steps", "2",
                 "--target.parameterisation", "components"]) == 0  # fmt: skip
    assert hepvld.load(old).meta["target_options"] == {}  # as every run before the option
    # resuming a components run without naming the option keeps its components
    assert main([*args, "--run-dir", str(old), "--train.max-steps", "3", "--resume"]) == 0
    latest = json.loads((old / "checkpoints" / "latest.json").read_text())
    assert latest and hepvld.load(old).meta["target_options"] == {}
    assert hepvld.load(old).model.target_shape[-1] == 5
