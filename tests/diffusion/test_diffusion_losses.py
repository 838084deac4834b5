"""VDM loss terms against closed forms and torch.distributions."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from hepvld.diffusion import (
    FixedLinearSchedule,
    LearnedSchedule,
    continuous_diffusion_loss,
    diffuse,
    gaussian_kl,
    latent_kl,
    latent_reconstruction,
    prior_kl,
    sample_times,
)
from hepvld.nn import GatedMLP, SinusoidalEmbedding


def test_loss_closed_forms() -> None:
    g = torch.Generator().manual_seed(0)
    schedule = FixedLinearSchedule(-10.0, 4.0)
    z0, noise = torch.randn(6, 3, 2, generator=g), torch.randn(6, 3, 2, generator=g)
    t = sample_times(6, g)
    perfect = continuous_diffusion_loss(lambda z, t_: noise, schedule, z0, t, noise)
    torch.testing.assert_close(perfect, torch.zeros(6))
    zero = continuous_diffusion_loss(lambda z, t_: torch.zeros_like(z), schedule, z0, t, noise)
    torch.testing.assert_close(zero, 0.5 * 14.0 * noise.square().sum((1, 2)))


def test_eps_fn_sees_diffused_input() -> None:
    g = torch.Generator().manual_seed(0)
    schedule = FixedLinearSchedule()
    z0, noise, t = (
        torch.randn(4, 5, generator=g),
        torch.randn(4, 5, generator=g),
        torch.rand(4, generator=g),
    )
    seen = {}

    def eps_fn(z_t: torch.Tensor, t_: torch.Tensor) -> torch.Tensor:
        seen["z_t"], seen["t"] = z_t, t_
        return z_t

    continuous_diffusion_loss(eps_fn, schedule, z0, t, noise)
    alpha, sigma = schedule.alpha_sigma(t)
    torch.testing.assert_close(seen["z_t"], alpha[:, None] * z0 + sigma[:, None] * noise)
    torch.testing.assert_close(diffuse(z0, schedule.gamma(t), noise), seen["z_t"])
    assert seen["t"] is t


def test_mask_ignores_padding() -> None:
    g = torch.Generator().manual_seed(0)
    schedule = FixedLinearSchedule()
    z0, noise = torch.randn(3, 4, 2, generator=g), torch.randn(3, 4, 2, generator=g)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    t = torch.rand(3, generator=g)

    def eps_fn(z: torch.Tensor, t_: torch.Tensor) -> torch.Tensor:
        return torch.where(mask[..., None], 0.3 * z, torch.full_like(z, float("inf")))

    z0_dirty = torch.where(mask[..., None], z0, torch.full_like(z0, 1e30))
    loss = continuous_diffusion_loss(eps_fn, schedule, z0_dirty, t, noise, mask=mask)
    assert torch.isfinite(loss).all() and loss[2] == 0
    for row in range(2):
        n = int(mask[row].sum())
        ref = continuous_diffusion_loss(
            lambda z, t_: 0.3 * z,
            schedule,
            z0[row : row + 1, :n],
            t[row : row + 1],
            noise[row : row + 1, :n],
        )
        torch.testing.assert_close(loss[row : row + 1], ref)


def test_gradients_reach_schedule_and_denoiser() -> None:
    torch.manual_seed(0)
    schedule = LearnedSchedule(hidden=32)
    embedding = SinusoidalEmbedding(8)
    net = GatedMLP(in_dim=4 + 8, out_dim=4, dim=16, n_blocks=2)

    def eps_fn(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([z_t, embedding(t)], dim=-1))

    g = torch.Generator().manual_seed(1)
    z0, noise = torch.randn(32, 4, generator=g), torch.randn(32, 4, generator=g)
    t = sample_times(32, g)
    loss = (
        continuous_diffusion_loss(eps_fn, schedule, z0, t, noise).mean()
        + prior_kl(z0, schedule).mean()
    )
    loss.backward()
    for name, p in [*schedule.named_parameters(), *net.named_parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_sample_times() -> None:
    t = sample_times(8, torch.Generator().manual_seed(0))
    assert t.shape == (8,) and torch.all((t >= 0) & (t < 1))
    torch.testing.assert_close(t.sort().values.diff(), torch.full((7,), 1 / 8))
    again = sample_times(8, torch.Generator().manual_seed(0))
    assert torch.equal(t, again)
    iid = sample_times(
        1000, torch.Generator().manual_seed(0), antithetic=False, dtype=torch.float64
    )
    assert iid.dtype == torch.float64 and torch.all((iid >= 0) & (iid < 1))
    assert abs(iid.mean().item() - 0.5) < 0.05


def test_prior_kl_matches_distributions() -> None:
    schedule = LearnedSchedule(-13.3, 3.0, hidden=8).double()
    z0 = torch.randn(5, 4, dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(torch.ones(1, dtype=torch.float64))
    ref = kl_divergence(Normal(alpha * z0, sigma), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(prior_kl(z0, schedule), ref)
    mask = torch.tensor([True, True, False, True, False])[:, None].expand(5, 4)
    torch.testing.assert_close(prior_kl(z0, schedule, mask), torch.where(mask[:, 0], ref, 0.0))


def test_latent_reconstruction_and_kl() -> None:
    schedule = LearnedSchedule(hidden=8).double()
    z0 = torch.randn(5, 3, dtype=torch.float64)
    loc, log_scale = latent_reconstruction(z0, schedule)
    alpha0, sigma0 = schedule.alpha_sigma(torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(loc, z0 / alpha0)
    torch.testing.assert_close(log_scale.exp(), (sigma0 / alpha0).expand(5, 3))
    mean, log_std = (
        torch.randn(5, 3, dtype=torch.float64),
        0.1 * torch.randn(5, 3, dtype=torch.float64),
    )
    ref = kl_divergence(Normal(mean, log_std.exp()), Normal(loc, log_scale.exp())).sum(-1)
    torch.testing.assert_close(gaussian_kl(mean, log_std, loc, log_scale), ref)
    torch.testing.assert_close(latent_kl(mean, log_std, z0, schedule), ref)


def test_module_schedule_is_differentiable_through_prior_kl() -> None:
    schedule = LearnedSchedule(hidden=8)
    prior_kl(torch.randn(4, 3), schedule).sum().backward()
    assert schedule.gamma_max.grad is not None and schedule.gamma_max.grad != 0
    assert isinstance(schedule, nn.Module)
