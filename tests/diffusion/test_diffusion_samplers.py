"""Samplers checked without training: an exact denoiser for Gaussian data.

For z_0 ~ N(mu, s^2) (independent per dimension) the variance-preserving marginal is
z_t ~ N(alpha mu, alpha^2 s^2 + sigma^2) and the exact noise prediction is
E[eps | z_t] = sigma (z_t - alpha mu) / (alpha^2 s^2 + sigma^2). Starting from the exact
z_1 marginal, a correct sampler ends at the exact z_0 marginal
N(alpha_0 mu, alpha_0^2 s^2 + sigma_0^2) up to sampling noise and discretisation error.

Tolerance per dimension (in units of the target std s_0), n = 20000 draws:
|mean error| <= 4 / sqrt(n) + a and |std / s_0 - 1| <= 4 / sqrt(2 n) + a, where the
discretisation allowance ``a`` is ~1.5-2x the worst bias measured with 10^6 draws
(stochastic ddpm) or a standardised noise draw (deterministic samplers, whose output is
then the pure discretisation error), on the linear and on the non-linear learned schedule
(uniform time grid, float32):

=========  =====  ==================  ==========
sampler    steps  measured max bias   allowance
=========  =====  ==================  ==========
ddpm       1000   7.3e-3              1.2e-2
ddim       500    6.8e-3              1.2e-2
pndm       100    8.2e-4              2.0e-3
dpmpp2m    100    1.6e-3              3.0e-3
=========  =====  ==================  ==========

(At equal steps ddim's bias is ~1/steps, pndm's and dpmpp2m's ~1/steps^2; e.g. ddim at
100 steps is off by 2-3 % in the spread, which this test would flag.)
"""

from __future__ import annotations

import math

import pytest
import torch

from hepvld.diffusion import (
    SAMPLERS,
    CosineSchedule,
    FixedLinearSchedule,
    LearnedSchedule,
    NoiseSchedule,
    alpha_sigma_from_gamma,
    get_sampler,
    timesteps,
)
from hepvld.diffusion.losses import EpsFn

MU = torch.tensor([0.0, 2.0, -1.5, 0.5])
STD = torch.tensor([1.0, 0.5, 2.0, 0.1])
N_DRAWS = 20_000
STEPS_AND_ALLOWANCE = {
    "ddpm": (1000, 1.2e-2),
    "ddim": (500, 1.2e-2),
    "pndm": (100, 2e-3),
    "dpmpp2m": (100, 3e-3),
}


def exact_eps(gamma_fn, mu: torch.Tensor = MU, std: torch.Tensor = STD) -> EpsFn:
    """Exact E[eps | z_t] for z_0 ~ N(mu, std^2), broadcast over the last dimension."""

    def eps_fn(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.shape == z_t.shape[:1]
        assert torch.all(t == t[0])  # samplers use one time per step
        alpha, sigma = alpha_sigma_from_gamma(gamma_fn(t[:1]))
        return sigma * (z_t - alpha * mu) / (alpha**2 * std**2 + sigma**2)

    return eps_fn


def marginal(schedule: NoiseSchedule, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    alpha, sigma = schedule.alpha_sigma(torch.tensor([t]))
    return alpha * MU, (alpha**2 * STD**2 + sigma**2).sqrt()


def learned_nonlinear() -> LearnedSchedule:
    """Random-init learned schedule made clearly non-linear (as training might make it)."""
    torch.manual_seed(0)
    schedule = LearnedSchedule()
    with torch.no_grad():
        schedule.l2.weight.mul_(5.0)
        schedule.l3.weight.mul_(300.0)
    return schedule


SCHEDULES = {"linear": FixedLinearSchedule, "learned": learned_nonlinear}


def _check_gaussian(z0: torch.Tensor, schedule: NoiseSchedule, allowance: float) -> None:
    mean0, std0 = marginal(schedule, 0.0)
    n = z0.shape[0]
    mean_err = ((z0.mean(0) - mean0) / std0).abs()
    std_err = (z0.std(0) / std0 - 1).abs()
    assert torch.all(mean_err <= 4 / math.sqrt(n) + allowance), mean_err
    assert torch.all(std_err <= 4 / math.sqrt(2 * n) + allowance), std_err


@pytest.mark.parametrize("schedule_name", sorted(SCHEDULES))
@pytest.mark.parametrize("name", sorted(SAMPLERS))
@torch.no_grad()
def test_reproduces_gaussian(name: str, schedule_name: str) -> None:
    schedule = SCHEDULES[schedule_name]()
    steps, allowance = STEPS_AND_ALLOWANCE[name]
    g = torch.Generator().manual_seed(1234)
    mean1, std1 = marginal(schedule, 1.0)
    noise = mean1 + std1 * torch.randn(N_DRAWS, 4, generator=g)
    z0 = get_sampler(name)(
        exact_eps(schedule.gamma), schedule.gamma, noise, steps=steps, generator=g
    )
    assert z0.shape == noise.shape and z0.dtype == noise.dtype
    _check_gaussian(z0, schedule, allowance)


@pytest.mark.parametrize("name", ["pndm", "dpmpp2m"])
@torch.no_grad()
def test_logsnr_spacing_on_cosine_schedule(name: str) -> None:
    # Uniform-in-log-SNR grids make the result independent of the schedule's shape;
    # measured bias at 50 steps: 1.5e-3 (pndm), 2.1e-3 (dpmpp2m).
    schedule = CosineSchedule()
    g = torch.Generator().manual_seed(99)
    mean1, std1 = marginal(schedule, 1.0)
    noise = mean1 + std1 * torch.randn(N_DRAWS, 4, generator=g)
    z0 = SAMPLERS[name](
        exact_eps(schedule.gamma), schedule.gamma, noise, steps=50, spacing="logsnr"
    )
    _check_gaussian(z0, schedule, 4e-3)


def test_too_few_ddim_steps_are_caught() -> None:
    """The tolerance has power: 20 DDIM steps (about 10 % too narrow) fail it."""
    schedule = FixedLinearSchedule()
    mean1, std1 = marginal(schedule, 1.0)
    noise = mean1 + std1 * torch.randn(N_DRAWS, 4, generator=torch.Generator().manual_seed(0))
    z0 = SAMPLERS["ddim"](exact_eps(schedule.gamma), schedule.gamma, noise, steps=20)
    with pytest.raises(AssertionError):
        _check_gaussian(z0, schedule, STEPS_AND_ALLOWANCE["ddim"][1])


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("steps", [1, 3, 5])
def test_sets_shape_and_small_step_counts(name: str, steps: int) -> None:
    schedule = LearnedSchedule(hidden=16)
    noise = torch.randn(6, 5, 3, generator=torch.Generator().manual_seed(0))
    std = torch.tensor([1.0, 0.5, 2.0])
    mu = torch.tensor([0.0, 1.0, -1.0])
    with torch.no_grad():
        out = SAMPLERS[name](
            exact_eps(schedule.gamma, mu, std),
            schedule.gamma,
            noise,
            steps=steps,
            generator=torch.Generator().manual_seed(1),
        )
    assert out.shape == (6, 5, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_determinism_and_generator(name: str) -> None:
    schedule = FixedLinearSchedule()
    noise = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))

    def run(seed: int) -> torch.Tensor:
        return SAMPLERS[name](
            exact_eps(schedule.gamma),
            schedule.gamma,
            noise,
            steps=10,
            generator=torch.Generator().manual_seed(seed),
        )

    assert torch.equal(run(7), run(7))
    assert torch.equal(
        noise, torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    )  # not modified
    if name == "ddpm":
        assert not torch.allclose(run(7), run(8))
    else:
        assert torch.equal(run(7), run(8))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_time_grid_and_schedule_are_used(name: str) -> None:
    """Samplers walk t from 1 towards 0 and depend on the gamma_fn they are given."""
    seen: list[float] = []

    def eps_fn(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(float(t[0]))
        return 0.5 * z_t

    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    a = SAMPLERS[name](
        eps_fn,
        FixedLinearSchedule().gamma,
        noise,
        steps=8,
        generator=torch.Generator().manual_seed(0),
    )
    assert seen[0] == 1.0 and min(seen) >= 0.0
    expected_nfe = {"pndm": 8 + 9}.get(name, 8)
    assert len(seen) == expected_nfe
    b = SAMPLERS[name](
        eps_fn,
        FixedLinearSchedule(-10.0, 3.0).gamma,
        noise,
        steps=8,
        generator=torch.Generator().manual_seed(0),
    )
    assert not torch.allclose(a, b)


def test_timesteps() -> None:
    t = timesteps(4)
    assert torch.equal(t, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    schedule = CosineSchedule().double()
    t = timesteps(10, gamma_fn=schedule.gamma, spacing="logsnr", dtype=torch.float64)
    assert t[0] == 1.0 and t[-1] == 0.0 and torch.all(t.diff() < 0)
    gamma = schedule.gamma(t)
    torch.testing.assert_close(gamma.diff(), gamma.diff().mean().expand(10), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="positive integer"):
        timesteps(0)
    with pytest.raises(ValueError, match="gamma_fn"):
        timesteps(3, spacing="logsnr")
    with pytest.raises(ValueError, match="spacing"):
        timesteps(3, spacing="karras")  # type: ignore[arg-type]


def test_get_sampler() -> None:
    assert set(SAMPLERS) == {"ddpm", "ddim", "pndm", "dpmpp2m"}
    assert get_sampler("pndm") is SAMPLERS["pndm"]
    with pytest.raises(ValueError, match=r"ddim.*ddpm.*dpmpp2m.*pndm"):
        get_sampler("euler")
