"""Behaviour of every registered model of the VLD family, without training data."""

from __future__ import annotations

import pytest
import torch

from hepvld.diffusion import SAMPLERS
from hepvld.models import MODELS, build_model, model_config
from hepvld.physics import TARGET_DIM

B, N, F, G = 6, 5, 12, 2


def make_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[0, 3:] = False
    mask[1, 1:] = False
    return {
        "objects": torch.randn(B, N, F, generator=gen),
        "mask": mask,
        "globals": torch.randn(B, G, generator=gen),
        "targets": torch.randn(B, TARGET_DIM, generator=gen),
        "weights": torch.rand(B, generator=gen) + 0.5,
    }


def make_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)  # test-local determinism of the initial weights
    return build_model(
        name,
        model_config("tiny"),
        object_features=F,
        global_features=G,
        target_dim=TARGET_DIM,
        target_shift=torch.zeros(TARGET_DIM),
        target_scale=torch.full((TARGET_DIM,), 10.0),
    )


VLD_FAMILY = [name for name in MODELS if name.endswith("vld")]


@pytest.mark.parametrize("name", VLD_FAMILY)
def test_loss_terms_finite_and_gradients_reach_every_parameter(name: str) -> None:
    model = make_model(name)
    out = model.loss(make_batch(), generator=torch.Generator().manual_seed(1))
    assert {"loss", "prior", "reconstruction", "consistency", "vae", "diffusion"} <= out.keys()
    for key, value in out.items():
        assert value.shape == () and torch.isfinite(value), key
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("name", VLD_FAMILY)
def test_loss_is_reproducible_with_the_same_generator(name: str) -> None:
    model = make_model(name)
    batch = make_batch()
    a = model.loss(batch, generator=torch.Generator().manual_seed(3))["loss"]
    b = model.loss(batch, generator=torch.Generator().manual_seed(3))["loss"]
    assert torch.equal(a, b)


def test_weights_enter_the_loss() -> None:
    model = make_model("vld")
    batch = make_batch()
    base = model.loss(batch, generator=torch.Generator().manual_seed(3))["loss"]
    batch["weights"] = batch["weights"] * 7.0  # a global factor cancels
    scaled = model.loss(batch, generator=torch.Generator().manual_seed(3))["loss"]
    torch.testing.assert_close(base, scaled)
    batch["weights"] = torch.zeros(B)
    batch["weights"][0] = 1.0
    single = model.loss(batch, generator=torch.Generator().manual_seed(3))["loss"]
    assert not torch.isclose(single, base)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_sample_shapes_and_padding_invariance(sampler: str) -> None:
    model = make_model("c-vld").eval()
    batch = make_batch()
    noise = torch.randn(B, 3, model.noise_dim, generator=torch.Generator().manual_seed(5))
    kwargs = dict(n_samples=3, sampler=sampler, steps=4, noise=noise)
    draws = model.sample(batch["objects"], batch["mask"], batch["globals"],
                         generator=torch.Generator().manual_seed(2), **kwargs)
    assert draws.shape == (B, 3, TARGET_DIM)
    assert torch.isfinite(draws).all()
    garbage = batch["objects"].clone()
    garbage[~batch["mask"]] = 1e4
    again = model.sample(garbage, batch["mask"], batch["globals"],
                         generator=torch.Generator().manual_seed(2), **kwargs)
    torch.testing.assert_close(draws, again)


def test_sample_rows_do_not_depend_on_batch_neighbours() -> None:
    model = make_model("vld").eval()
    batch = make_batch()
    noise = torch.randn(B, 2, model.noise_dim, generator=torch.Generator().manual_seed(5))
    full = model.sample(batch["objects"], batch["mask"], batch["globals"], n_samples=2,
                        sampler="dpmpp2m", steps=5, noise=noise)
    part = model.sample(batch["objects"][2:4], batch["mask"][2:4], batch["globals"][2:4],
                        n_samples=2, sampler="dpmpp2m", steps=5, noise=noise[2:4])
    torch.testing.assert_close(full[2:4], part, rtol=1e-5, atol=1e-5)


def test_wrong_noise_shape_is_rejected() -> None:
    model = make_model("vld")
    batch = make_batch()
    with pytest.raises(ValueError, match="noise has shape"):
        model.sample(batch["objects"], batch["mask"], batch["globals"], n_samples=2,
                     noise=torch.zeros(B, 3, model.noise_dim))


def test_unknown_model_name_lists_registered() -> None:
    with pytest.raises(ValueError, match="registered"):
        build_model("nope", model_config("tiny"), object_features=F, global_features=G,
                     target_dim=TARGET_DIM)


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="heads"):
        model_config("tiny", dim=15, heads=2)
    with pytest.raises(ValueError, match="variant"):
        model_config("tiny", variant="x-vld")


@pytest.mark.parametrize("scale", [0.0, 0.25, 1.0])
def test_latent_gradient_scales_only_the_backward_pass(scale: float) -> None:
    from hepvld.models.vld import _scale_gradient

    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = _scale_gradient(x, scale)
    torch.testing.assert_close(y, x.detach())
    (3.0 * y).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((2,), 3.0 * scale))


def test_stopped_latent_gradient_leaves_the_loss_value_unchanged() -> None:
    batch = make_batch()
    values = []
    for g in (1.0, 0.0):
        torch.manual_seed(0)
        model = build_model("vld", model_config("tiny", latent_gradient=g), object_features=F,
                            global_features=G, target_dim=TARGET_DIM)
        values.append(model.loss(batch, generator=torch.Generator().manual_seed(3))["loss"])
    torch.testing.assert_close(values[0], values[1])
