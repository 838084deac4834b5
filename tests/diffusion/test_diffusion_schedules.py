"""Noise schedules: endpoints, monotonicity, variance preservation, exact derivatives."""

from __future__ import annotations

import pytest
import torch

from hepvld.diffusion import (
    CosineSchedule,
    FixedLinearSchedule,
    LearnedSchedule,
    NoiseSchedule,
    alpha_sigma_from_gamma,
)


def _learned_nonlinear() -> LearnedSchedule:
    """A random-init learned schedule, made visibly non-linear."""
    torch.manual_seed(0)
    schedule = LearnedSchedule(gamma_min=-12.0, gamma_max=6.0, hidden=64)
    with torch.no_grad():
        schedule.l2.weight.mul_(5.0)
        schedule.l3.weight.mul_(300.0)
    return schedule


SCHEDULES = {
    "linear": lambda: FixedLinearSchedule(-12.0, 6.0),
    "cosine": lambda: CosineSchedule(-12.0, 6.0),
    "learned": lambda: LearnedSchedule(-12.0, 6.0),
    "learned_nonlinear": _learned_nonlinear,
}


@pytest.fixture(params=sorted(SCHEDULES))
def schedule(request: pytest.FixtureRequest) -> NoiseSchedule:
    return SCHEDULES[request.param]().double()


def test_endpoints_monotone_variance_preserving(schedule: NoiseSchedule) -> None:
    t = torch.linspace(0, 1, 201, dtype=torch.float64)
    gamma = schedule.gamma(t)
    assert gamma.shape == t.shape and gamma.dtype == torch.float64
    torch.testing.assert_close(gamma[[0, -1]], torch.tensor([-12.0, 6.0], dtype=torch.float64))
    assert torch.all(gamma.diff() > 0)
    alpha, sigma = schedule.alpha_sigma(t)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t))
    torch.testing.assert_close(torch.log(alpha**2 / sigma**2), -gamma)
    torch.testing.assert_close(schedule(t), gamma)


def test_any_shape(schedule: NoiseSchedule) -> None:
    t = torch.rand(3, 4, dtype=torch.float64)
    gamma, dgamma = schedule.gamma_and_derivative(t)
    assert gamma.shape == dgamma.shape == (3, 4)
    torch.testing.assert_close(gamma, schedule.gamma(t.flatten()).view(3, 4))


def test_derivative_matches_finite_differences(schedule: NoiseSchedule) -> None:
    t = torch.linspace(0.01, 0.99, 37, dtype=torch.float64)
    h = 1e-6
    fd = (schedule.gamma(t + h) - schedule.gamma(t - h)) / (2 * h)
    gamma, dgamma = schedule.gamma_and_derivative(t)
    torch.testing.assert_close(gamma, schedule.gamma(t))
    torch.testing.assert_close(dgamma, fd, rtol=1e-6, atol=1e-6)
    assert torch.all(dgamma > 0)


def test_closed_form_derivative_matches_autograd(schedule: NoiseSchedule) -> None:
    t = torch.rand(16, dtype=torch.float64)
    _, closed = schedule.gamma_and_derivative(t)
    _, generic = NoiseSchedule.gamma_and_derivative(schedule, t)
    torch.testing.assert_close(closed, generic)


def test_learned_derivative_backpropagates_to_parameters() -> None:
    schedule = _learned_nonlinear()
    _, dgamma = schedule.gamma_and_derivative(torch.rand(8))
    dgamma.sum().backward()
    for name, p in schedule.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_no_graph_under_no_grad() -> None:
    schedule = _learned_nonlinear()
    with torch.no_grad():
        gamma, dgamma = NoiseSchedule.gamma_and_derivative(schedule, torch.rand(4))
    assert not gamma.requires_grad and not dgamma.requires_grad


def test_alpha_sigma_extremes() -> None:
    alpha, sigma = alpha_sigma_from_gamma(torch.tensor([-40.0, 0.0, 40.0]))
    assert torch.all(alpha > 0) and torch.all(sigma > 0)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones(3))


@pytest.mark.parametrize("cls", [FixedLinearSchedule, CosineSchedule, LearnedSchedule])
def test_bad_endpoints(cls: type) -> None:
    with pytest.raises(ValueError, match="gamma_min < gamma_max"):
        cls(5.0, -5.0)
