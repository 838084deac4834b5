"""VL-VLD (particle level) without training data: on a stand-in level in the particle
level's layout (``FakeParticleLevel`` below), so that these tests hold whatever builds the targets."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from scipy import special, stats
from torch import Tensor

from hepvld.api import event_noise, step_noise
from hepvld.diffusion import SAMPLERS, SamplerSpec, SlotSchedule
from hepvld.models import build_model, model_config
from hepvld.models.multiplicity import MultiplicityHead
from hepvld.models.registry import family_level
from hepvld.models.vlvld import FAMILY_VARIANTS, VLVLD

# ------------------------------------------------------- a stand-in particle level
# The particle level's layout (COMMON contract: slot 0 the event vector, objects
# (px, py, pz, log(E+1), log(M+1)) + one-hot type, padded slots 0 and masked) with random
# physical values, and the level members a model reads.

K_OBJECTS = 8
SLOTS, FEATURES = 1 + K_OBJECTS, 9


class FakeParticleLevel:
    """The layout of the particle level with ``max_objects = 8``."""

    name = "fake-particle"
    max_objects = K_OBJECTS
    n_types = 4
    n_continuous = 5
    n_event_features = 7

    @property
    def shape(self) -> tuple[int, int]:
        return (SLOTS, FEATURES)

    @property
    def fixed_multiplicity(self) -> bool:
        return False

    def options(self) -> dict[str, Any]:
        return {}

    def consistency(self, values: Tensor, mask: Tensor, *, scale: float) -> Tensor:
        """``sum_objects |M^2 - (E^2 - p^2)| / scale^2`` from the object columns."""
        p2 = values[..., 1:, :3].square().sum(-1)
        e = torch.expm1(values[..., 1:, 3])
        m = torch.expm1(values[..., 1:, 4])
        residual = (m.square() - (e.square() - p2)).abs() / scale**2
        return (residual * mask[..., 1:].to(values.dtype)).sum(-1)


def fake_targets(batch: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Physical ``values (B, K, H)`` and ``mask (B, K)`` in the contract's layout."""
    gen = torch.Generator().manual_seed(seed)
    n = torch.randint(3, K_OBJECTS + 1, (batch,), generator=gen)
    mask = torch.arange(SLOTS)[None, :] <= n[:, None]
    values = torch.zeros(batch, SLOTS, FEATURES)
    pt = 30.0 + 60.0 * torch.rand(batch, K_OBJECTS, generator=gen)
    pt = pt.sort(-1, descending=True).values
    phi = 6.28 * torch.rand(batch, K_OBJECTS, generator=gen)
    pz = 80.0 * torch.randn(batch, K_OBJECTS, generator=gen)
    mass = 5.0 * torch.rand(batch, K_OBJECTS, generator=gen)
    px, py = pt * phi.cos(), pt * phi.sin()
    energy = (px.square() + py.square() + pz.square() + mass.square()).sqrt()
    types = torch.randint(0, 4, (batch, K_OBJECTS), generator=gen)
    values[:, 1:, 0], values[:, 1:, 1], values[:, 1:, 2] = px, py, pz
    values[:, 1:, 3], values[:, 1:, 4] = energy.log1p(), mass.log1p()
    values[:, 1:, 5:] = torch.nn.functional.one_hot(types, 4).float()
    met = 20.0 + 50.0 * torch.rand(batch, generator=gen)
    met_phi = 6.28 * torch.rand(batch, generator=gen)
    nu_pz = 60.0 * torch.randn(batch, generator=gen)
    values[:, 0, 0] = met
    values[:, 0, 1], values[:, 0, 2] = met_phi.sin(), met_phi.cos()
    values[:, 0, 3], values[:, 0, 4] = met * met_phi.cos(), met * met_phi.sin()
    values[:, 0, 5] = nu_pz
    values[:, 0, 6] = (met.square() + nu_pz.square()).sqrt()
    values = values.masked_fill(~mask.unsqueeze(-1), 0.0)
    return values, mask


def fake_affine() -> tuple[Tensor, Tensor]:
    """A ``(shift, scale)`` of the contract's kind: continuous columns standardised, type and
    unused columns shift 0 scale 1."""
    shift = torch.zeros(SLOTS, FEATURES)
    scale = torch.ones(SLOTS, FEATURES)
    scale[0, :7] = torch.tensor([30.0, 0.7, 0.7, 40.0, 40.0, 60.0, 60.0])
    shift[0, 0], shift[0, 6] = 45.0, 80.0
    scale[1:, :5] = torch.tensor([50.0, 50.0, 80.0, 0.6, 0.5])
    shift[1:, 3], shift[1:, 4] = 4.5, 1.2
    return shift, scale


B, N, F, G = 6, 5, 12, 2


def make_model(name: str = "vl-vld", **overrides: object) -> VLVLD:
    torch.manual_seed(0)
    shift, scale = fake_affine()
    cfg = model_config("tiny", vlvld_latent_dim=4, **overrides)  # type: ignore[arg-type]
    model = build_model(
        name,
        cfg,
        object_features=F,
        global_features=G,
        level=FakeParticleLevel(),
        target_shift=shift,
        target_scale=scale,
    )
    assert isinstance(model, VLVLD)
    return model


def make_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    values, target_mask = fake_targets(B, seed)
    shift, scale = fake_affine()
    targets = ((values - shift) / scale).masked_fill(~target_mask.unsqueeze(-1), 0.0)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[0, 3:] = False
    return {
        "objects": torch.randn(B, N, F, generator=gen),
        "mask": mask,
        "globals": torch.randn(B, G, generator=gen),
        "targets": targets,
        "target_mask": target_mask,
        "weights": torch.rand(B, generator=gen) + 0.5,
    }


TERMS = {"loss", "prior", "reconstruction", "type_ce", "consistency", "vae", "diffusion"}


def test_family_is_registered_on_the_particle_level() -> None:
    for name in FAMILY_VARIANTS:
        assert family_level(name) == "particle"
    with pytest.raises(ValueError, match="event slot"):
        build_model(
            "vl-vld", model_config("tiny"), object_features=F, global_features=G, level="parton"
        )


@pytest.mark.parametrize("name", sorted(FAMILY_VARIANTS))
def test_loss_terms_finite_and_gradients_reach_every_parameter(name: str) -> None:
    model = make_model(name)
    out = model.loss(make_batch(), generator=torch.Generator().manual_seed(1))
    assert TERMS | {"multiplicity", "multiplicity_gamma", "multiplicity_categorical"} <= set(out)
    for key, value in out.items():
        assert value.shape == () and torch.isfinite(value), key
    out["loss"].backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)
    ]
    assert not missing, f"no gradient reaches {missing}"


def test_conditional_variants_read_the_detector_in_the_vae() -> None:
    batch = make_batch()
    other = {**batch, "objects": batch["objects"] + 1.0}
    for name, changes in (("vl-vld", False), ("c-vl-vld", True)):
        model = make_model(name).eval()
        cond = model.condition(batch["objects"], batch["mask"], batch["globals"])
        cond2 = model.condition(other["objects"], other["mask"], other["globals"])
        mean, _ = model.encode(batch["targets"], batch["target_mask"], model.context(cond))
        mean2, _ = model.encode(batch["targets"], batch["target_mask"], model.context(cond2))
        assert (not torch.allclose(mean, mean2)) == changes, name


def test_padded_slots_never_change_the_loss() -> None:
    model = make_model("c-vl-vld")
    batch = make_batch()
    garbage = batch["targets"].clone()
    pad = ~batch["target_mask"]
    garbage[pad] = 1e3 * torch.randn(int(pad.sum()), garbage.shape[-1])
    det = batch["objects"].clone()
    det[~batch["mask"]] = 1e3
    a = model.loss(batch, generator=torch.Generator().manual_seed(3))
    b = model.loss(
        {**batch, "targets": garbage, "objects": det}, generator=torch.Generator().manual_seed(3)
    )
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5, msg=key)


def test_padded_slot_noise_never_changes_the_draws() -> None:
    model = make_model("c-vl-vld").eval()
    batch = make_batch()
    gen = torch.Generator().manual_seed(5)
    noise = torch.randn(B, 2, *model.noise_shape, generator=gen)
    spec = SamplerSpec("dpmpp2m", steps=4)
    args = (batch["objects"], batch["mask"], batch["globals"])
    a = model.sample(*args, n_samples=2, sampler=spec, noise=noise)
    other = noise.clone()
    pad = ~a.mask  # (B, S, K): padded slots of each draw
    other[..., : model.n_slots, :][pad] = 50.0
    b = model.sample(*args, n_samples=2, sampler=spec, noise=other)
    assert torch.equal(a.mask, b.mask)
    torch.testing.assert_close(a.values, b.values, rtol=1e-5, atol=1e-5)
    assert (~a.mask).any() and a.mask[..., 0].all()


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_gives_masked_one_hot_physical_draws(sampler: str) -> None:
    model = make_model().eval()
    batch = make_batch()
    s = 3
    draws = model.unfold(
        batch["objects"],
        batch["mask"],
        batch["globals"],
        n_samples=s,
        sampler=SamplerSpec(sampler, steps=3),
        generator=torch.Generator().manual_seed(0),
    )
    assert draws.values.shape == (B, s, SLOTS, 9) and draws.mask.shape == (B, s, SLOTS)
    assert torch.isfinite(draws.values).all()
    m = draws.mask
    assert m[..., 0].all()
    n = m[..., 1:].sum(-1)
    # real object slots come first
    assert torch.equal(m[..., 1:], torch.arange(SLOTS - 1) < n.unsqueeze(-1))
    assert (draws.values[~m] == 0).all()
    types = draws.values[..., 1:, 5:9]
    real = m[..., 1:]
    assert torch.equal(types[real].sum(-1), torch.ones(int(real.sum())))
    assert set(types[real].unique().tolist()) <= {0.0, 1.0}
    assert (draws.values[..., 0, 7:] == 0).all()


@pytest.mark.parametrize("sampler", ["dpmpp2m", "ddpm"])
def test_draws_are_reproducible_per_event_number(sampler: str) -> None:
    model = make_model("uc-vl-vld").eval()
    batch = make_batch()
    numbers = np.arange(100, 100 + B, dtype=np.uint64)
    spec = SamplerSpec(sampler, steps=3)
    s = 2

    def draw(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(idx)
        out = model.sample(
            batch["objects"][t],
            batch["mask"][t],
            batch["globals"][t],
            n_samples=s,
            sampler=spec,
            noise=event_noise(7, numbers[idx], (s, *model.noise_shape)),
            step_noise=step_noise(7, numbers[idx]) if spec.stochastic else None,
        )
        return out.values, out.mask

    full_values, full_mask = draw(np.arange(B))
    part_values, part_mask = draw(np.array([4, 1]))
    assert torch.equal(part_mask, full_mask[[4, 1]])
    torch.testing.assert_close(part_values, full_values[[4, 1]], rtol=1e-4, atol=1e-4)
    again, _ = draw(np.arange(B))
    torch.testing.assert_close(again, full_values, rtol=0, atol=0)


def test_tiny_overfit_decreases_every_term() -> None:
    model = make_model("c-vl-vld", dim=32)
    batch = make_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history: list[dict[str, float]] = []
    for _ in range(60):
        out = model.loss(batch, generator=torch.Generator().manual_seed(11))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in out.items()})
    for key in ("loss", "reconstruction", "type_ce", "mse", "multiplicity", "diffusion"):
        first = np.mean([h[key] for h in history[:5]])
        last = np.mean([h[key] for h in history[-5:]])
        assert last < first, (key, first, last)
        assert math.isfinite(last)


def test_gamma_head_probabilities_match_scipy() -> None:
    torch.manual_seed(0)
    head = MultiplicityHead(8, n_max=16, kind="gamma")
    z = torch.randn(5, 8)
    k, theta = head.gamma_parameters(z)
    k_, th_ = k.detach().double().numpy(), theta.detach().double().numpy()
    edges = np.arange(16) + 0.5
    cdf = stats.gamma.cdf(edges[None, :], k_[:, None], scale=th_[:, None])
    expected = np.diff(np.concatenate([np.zeros((5, 1)), cdf, np.ones((5, 1))], 1), axis=1)
    np.testing.assert_allclose(head.log_pmf(z).exp().detach().numpy(), expected, atol=1e-5)
    n = torch.tensor([3, 6, 7, 16, 20])
    expected_lp = np.log(expected[np.arange(5), np.minimum(n.numpy(), 16)])
    np.testing.assert_allclose(head.log_prob(z, n).detach().numpy(), expected_lp, rtol=1e-4)
    # training loss: the dequantised density at n + u - 1/2 with u from the generator
    gen = torch.Generator().manual_seed(2)
    u = torch.rand(5, generator=torch.Generator().manual_seed(2)).double().numpy()
    nll = head.nll(z, n, gen).detach().numpy()
    x = np.maximum(n.numpy() + u - 0.5, 1e-3)
    np.testing.assert_allclose(nll, -stats.gamma.logpdf(x, k_, scale=th_), rtol=1e-4)


def test_categorical_head_and_inverse_cdf_sampling() -> None:
    torch.manual_seed(1)
    head = MultiplicityHead(8, n_max=10, kind="categorical")
    z = torch.randn(3, 8)
    logits = head.net(z).detach().double().numpy()
    np.testing.assert_allclose(
        head.log_pmf(z).detach().numpy(), special.log_softmax(logits, axis=-1), atol=1e-5
    )
    n = torch.tensor([0, 4, 10])
    np.testing.assert_allclose(
        head.nll(z, n).detach().numpy(),
        -special.log_softmax(logits, -1)[np.arange(3), n.numpy()],
        rtol=1e-5,
    )
    # inverse CDF on a fine uniform grid reproduces the probabilities
    grid = (torch.arange(20000) + 0.5) / 20000
    for kind in ("categorical", "gamma"):
        h = head if kind == "categorical" else MultiplicityHead(8, n_max=10, kind="gamma")
        counts = h.sample(z[:1].expand(len(grid), -1), grid).bincount(minlength=11).double()
        np.testing.assert_allclose(
            (counts / len(grid)).numpy(), h.log_pmf(z[:1]).exp()[0].detach().numpy(), atol=2e-4
        )


def test_slot_schedule_is_monotone_with_exact_derivative() -> None:
    torch.manual_seed(0)
    schedule = SlotSchedule(5, gamma_min=-4.0, gamma_max=5.0, hidden=8)
    with torch.no_grad():  # bend the slots differently
        schedule.head.weight.normal_(std=1.0)
    t = torch.linspace(0, 1, 101, requires_grad=True)
    gamma, dgamma = schedule.gamma_and_derivative(t)
    assert gamma.shape == (101, 5)
    assert (gamma.diff(dim=0) > 0).all() and (dgamma > 0).all()
    for k in range(5):
        (auto,) = torch.autograd.grad(gamma[:, k].sum(), t, retain_graph=True)
        torch.testing.assert_close(auto, dgamma[:, k], rtol=1e-4, atol=1e-4)
    assert schedule.per_slot(t[:3]).shape == (3, 5, 1)
    assert not torch.allclose(gamma[:, 0], gamma[:, 1])


def test_the_drawing_head_is_configurable() -> None:
    batch = make_batch()
    args = (batch["objects"], batch["mask"], batch["globals"])
    noise = torch.randn(B, 4, *make_model().noise_shape, generator=torch.Generator().manual_seed(0))
    spec = SamplerSpec("ddim", steps=2)
    model = make_model(vlvld_multiplicity="gamma").eval()
    z_y = model.condition(*args).event
    n = model.sample(*args, n_samples=4, sampler=spec, noise=noise).mask[..., 1:].sum(-1)
    u = torch.special.ndtr(noise[..., model.n_slots, 0]).flatten()
    head = model.multiplicity["gamma"]
    assert isinstance(head, MultiplicityHead)
    expected = head.sample(z_y.repeat_interleave(4, 0), u).view(B, 4)
    assert torch.equal(n, expected)
    n_cat = model.sample(*args, n_samples=4, sampler=spec, noise=noise, multiplicity="categorical")
    assert not torch.equal(n_cat.mask[..., 1:].sum(-1), n)


def test_the_export_wrapper_returns_values_mask_multiplicity_and_types() -> None:
    """The module ``export_sampler`` traces (run eagerly here; the exported program is
    tested in tests/test_export_vlvld.py): the draws of ``sample`` and their mask."""
    from hepvld.export import ExportableSampler

    model = make_model("c-vl-vld").eval()
    batch = make_batch()
    noise = torch.randn(B, 3, *model.noise_shape, generator=torch.Generator().manual_seed(2))
    args = (batch["objects"], batch["mask"], batch["globals"])
    values, mask, n, types = ExportableSampler(model, sampler="ddim", steps=2)(*args, noise)
    ref = model.sample(*args, n_samples=3, sampler=SamplerSpec("ddim", 2), noise=noise)
    assert torch.equal(values, ref.values.flatten(2)) and torch.equal(mask, ref.mask)
    assert torch.equal(n, ref.mask[..., 1:].sum(-1))
    assert torch.equal(types >= 0, ref.mask[..., 1:])


def test_slot_schedule_can_keep_gamma_0_fixed() -> None:
    torch.manual_seed(0)
    schedule = SlotSchedule(4, gamma_min=-4.0, gamma_max=5.0, learn_gamma_0=False)
    with torch.no_grad():
        schedule.head.weight.normal_(std=1.0)
        schedule.head.bias.normal_(std=1.0)
    ends = schedule.gamma(torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(ends[0], torch.full((4,), -4.0))
    assert (ends[1] > ends[0]).all() and not torch.allclose(ends[1], ends[1][:1].expand(4))
