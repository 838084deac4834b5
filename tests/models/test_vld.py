"""Behaviour of every registered model of the VLD family, without training data."""

from __future__ import annotations

import pytest
import torch

from hepvld.diffusion import SAMPLERS, SamplerSpec
from hepvld.models import MODELS, build_model, model_config
from hepvld.models.registry import family_level
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
        "targets": torch.randn(B, TARGET_DIM, generator=gen).unflatten(-1, (11, 5)),
        "weights": torch.rand(B, generator=gen) + 0.5,
    }


def make_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)  # test-local determinism of the initial weights
    return build_model(
        name,
        model_config("tiny"),
        object_features=F,
        global_features=G,
        target_shift=torch.zeros(TARGET_DIM),
        target_scale=torch.full((TARGET_DIM,), 10.0),
    )


VLD_FAMILY = [name for name in MODELS if name.endswith("vld") and family_level(name) == "parton"]


@pytest.mark.parametrize("name", VLD_FAMILY)
def test_loss_terms_finite_and_gradients_reach_every_parameter(name: str) -> None:
    model = make_model(name)
    out = model.loss(make_batch(), generator=torch.Generator().manual_seed(1))
    assert {"loss", "prior", "reconstruction", "consistency", "vae", "diffusion"} <= out.keys()
    for key, value in out.items():
        assert value.shape == () and torch.isfinite(value), key
    out["loss"].backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)
    ]
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
    noise = torch.randn(B, 3, *model.noise_shape, generator=torch.Generator().manual_seed(5))
    kwargs = dict(n_samples=3, sampler=SamplerSpec(sampler, 4), noise=noise)
    draws = model.sample(
        batch["objects"],
        batch["mask"],
        batch["globals"],
        generator=torch.Generator().manual_seed(2),
        **kwargs,
    ).values.flatten(2)
    assert draws.shape == (B, 3, TARGET_DIM)
    assert torch.isfinite(draws).all()
    garbage = batch["objects"].clone()
    garbage[~batch["mask"]] = 1e4
    again = model.sample(
        garbage,
        batch["mask"],
        batch["globals"],
        generator=torch.Generator().manual_seed(2),
        **kwargs,
    ).values.flatten(2)
    torch.testing.assert_close(draws, again)


def test_sample_rows_do_not_depend_on_batch_neighbours() -> None:
    model = make_model("vld").eval()
    batch = make_batch()
    noise = torch.randn(B, 2, *model.noise_shape, generator=torch.Generator().manual_seed(5))
    full = model.sample(
        batch["objects"],
        batch["mask"],
        batch["globals"],
        n_samples=2,
        sampler=SamplerSpec("dpmpp2m", 5),
        noise=noise,
    ).values
    part = model.sample(
        batch["objects"][2:4],
        batch["mask"][2:4],
        batch["globals"][2:4],
        n_samples=2,
        sampler=SamplerSpec("dpmpp2m", 5),
        noise=noise[2:4],
    ).values
    torch.testing.assert_close(full[2:4], part, rtol=1e-5, atol=1e-5)


def test_wrong_noise_shape_is_rejected() -> None:
    model = make_model("vld")
    batch = make_batch()
    with pytest.raises(ValueError, match="noise has shape"):
        model.sample(
            batch["objects"],
            batch["mask"],
            batch["globals"],
            n_samples=2,
            noise=torch.zeros(B, 3, *model.noise_shape),
        )


def test_unknown_model_name_lists_registered() -> None:
    with pytest.raises(ValueError, match="registered"):
        build_model(
            "nope",
            model_config("tiny"),
            object_features=F,
            global_features=G,
        )


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
        model = build_model(
            "vld",
            model_config("tiny", latent_gradient=g),
            object_features=F,
            global_features=G,
        )
        values.append(model.loss(batch, generator=torch.Generator().manual_seed(3))["loss"])
    torch.testing.assert_close(values[0], values[1])


@pytest.mark.parametrize("name", ["vld", "vdm"])
def test_gaussian_eps_adds_the_exact_noise_of_standard_normal_data(name: str) -> None:
    """With the network's output zeroed, eps_hat is sigma_t z_t, E[eps | z_t] for N(0, I) data."""
    model = make_model(name)
    last = model.diffusion.denoiser.output
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    gen = torch.Generator().manual_seed(1)
    z_t = torch.randn(B, *model.noise_shape, generator=gen)
    t = torch.rand(B, generator=gen)
    z_y = torch.randn(B, model.condition_dim, generator=gen)
    _, sigma = model.diffusion.schedule.alpha_sigma(t)
    torch.testing.assert_close(model.diffusion.eps(z_t, t, z_y), sigma[:, None] * z_t)
    off = build_model(
        name,
        model_config("tiny", gaussian_eps=False),
        object_features=F,
        global_features=G,
    )
    off.load_state_dict(model.state_dict())
    torch.testing.assert_close(off.diffusion.eps(z_t, t, z_y), torch.zeros_like(z_t))


def test_latent_norm_trains_on_batch_statistics_and_samples_with_running_ones() -> None:
    model = make_model("vld")
    assert model.config.latent_norm
    batch = make_batch()
    model.train()
    model.loss(batch, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mean, _ = model.encode(
            batch["targets"].flatten(1),
            model.condition(batch["objects"], batch["mask"], batch["globals"]).event,
        )
    # the first update copies the batch statistics
    torch.testing.assert_close(model.latent_shift, mean.mean(0))
    torch.testing.assert_close(
        model.latent_scale, mean.std(0, unbiased=False), rtol=1e-4, atol=1e-6
    )
    w = model.standardise(mean)
    torch.testing.assert_close(w.mean(0), torch.zeros_like(w[0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(w.std(0, unbiased=False), torch.ones_like(w[0]), atol=1e-3, rtol=0)
    # later updates move the running values by the momentum; evaluation leaves them alone
    before = model.latent_shift.clone()
    model.loss(make_batch(seed=1), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mean1, _ = model.encode(make_batch(seed=1)["targets"].flatten(1), None)
    m = model.config.latent_norm_momentum
    torch.testing.assert_close(model.latent_shift, (1 - m) * before + m * mean1.mean(0))
    model.eval()
    frozen = model.latent_shift.clone()
    model.loss(make_batch(seed=2))
    torch.testing.assert_close(model.latent_shift, frozen)
    # sampling maps the denoised w back through the running statistics before decoding
    noise = torch.randn(B, 1, *model.noise_shape, generator=torch.Generator().manual_seed(4))
    got = model.sample(
        batch["objects"],
        batch["mask"],
        batch["globals"],
        n_samples=1,
        sampler=SamplerSpec("ddim", 3),
        noise=noise,
    ).values.flatten(2)
    with torch.no_grad():
        z_y = model.condition(batch["objects"], batch["mask"], batch["globals"]).event
        w = model.diffusion.denoise(
            noise[:, 0], z_y, sampler=SamplerSpec("ddim", 3), generator=None
        )
        want = model.decode(model.latent_shift + model.latent_scale * w, z_y)
    torch.testing.assert_close(got[:, 0], want)


def test_latent_norm_makes_the_latent_terms_blind_to_the_latent_scale() -> None:
    """Shrinking every posterior (means and widths) by a common factor changes no latent term:
    the diffusion loss cannot gain by squeezing the latent (the collapse of docs/models.md)."""
    model = make_model("vld").train()
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(B, *model.noise_shape, generator=gen) + 3.0
    log_std = torch.full_like(mean, -3.0)
    eps = torch.randn(mean.shape, generator=gen)
    z_y = torch.randn(B, model.condition_dim, generator=gen)
    terms = []
    for c in (1.0, 0.01):
        shift = torch.full(model.noise_shape, 5.0)  # any common offset as well
        m = shift + c * mean
        ls = log_std + torch.log(torch.tensor(c))
        terms.append(
            model.latent_terms(m + ls.exp() * eps, m, ls, z_y, torch.Generator().manual_seed(1))
        )
    for key in ("prior", "vae", "diffusion"):
        torch.testing.assert_close(terms[0][key], terms[1][key], rtol=1e-3, atol=1e-3)
