"""SamplerSpec, the given time grid, per-step noise functions and per-slot schedules."""

from __future__ import annotations

import pytest
import torch

from hepvld.diffusion import SAMPLERS, FixedLinearSchedule, SamplerSpec, timesteps


def _eps(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.3 * z_t + 0.1 * t.view(-1, *([1] * (z_t.ndim - 1)))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_spec_runs_the_sampler_on_its_grid(name: str) -> None:
    schedule = FixedLinearSchedule()
    noise = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    spec = SamplerSpec(name, steps=5)
    got = spec.run(_eps, schedule.gamma, noise, generator=torch.Generator().manual_seed(1))
    want = SAMPLERS[name](
        _eps, schedule.gamma, noise, steps=5, generator=torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    # the grid itself is an input: a given grid equals the one built from steps / spacing
    grid = timesteps(5, gamma_fn=schedule.gamma, spacing="logsnr")
    by_grid = SAMPLERS[name](
        _eps, schedule.gamma, noise, times=grid, generator=torch.Generator().manual_seed(1)
    )
    by_steps = SAMPLERS[name](
        _eps,
        schedule.gamma,
        noise,
        steps=5,
        spacing="logsnr",
        generator=torch.Generator().manual_seed(1),
    )
    torch.testing.assert_close(by_grid, by_steps, rtol=0, atol=0)
    assert spec.stochastic == (name == "ddpm")


def test_ddpm_takes_its_step_noise_from_noise_fn() -> None:
    schedule = FixedLinearSchedule()
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    calls: list[int] = []

    def noise_fn(step: int, z: torch.Tensor) -> torch.Tensor:
        calls.append(step)
        return torch.full_like(z, 0.5 * step)

    a = SAMPLERS["ddpm"](_eps, schedule.gamma, noise, steps=4, noise_fn=noise_fn)
    b = SAMPLERS["ddpm"](
        _eps, schedule.gamma, noise, steps=4, noise_fn=noise_fn, generator=torch.Generator()
    )
    assert calls == [0, 1, 2, 3] * 2
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # the generator is not used
    c = SAMPLERS["ddpm"](_eps, schedule.gamma, noise, steps=4, generator=torch.Generator())
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_per_slot_schedule_equals_one_run_per_slot(name: str) -> None:
    """gamma_fn may return (T, K, 1): each slot then follows its own schedule."""
    slow, fast = FixedLinearSchedule(-6.0, 4.0), FixedLinearSchedule(-2.0, 8.0)

    def per_slot(t: torch.Tensor) -> torch.Tensor:
        return torch.stack([slow.gamma(t), fast.gamma(t)], dim=-1).unsqueeze(-1)

    noise = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(2))  # (B, K, H)
    xi = torch.randn(10, 6, 2, 3, generator=torch.Generator().manual_seed(3))

    def slots(sl: slice):  # ddpm's per-step noise of the slots ``sl``
        return lambda step, z: xi[step, :, sl]

    both = SAMPLERS[name](_eps, per_slot, noise, steps=6, noise_fn=slots(slice(None)))
    for slot, schedule in enumerate((slow, fast)):
        sl = slice(slot, slot + 1)
        alone = SAMPLERS[name](_eps, schedule.gamma, noise[:, sl], steps=6, noise_fn=slots(sl))
        torch.testing.assert_close(both[:, sl], alone, rtol=1e-5, atol=1e-6)


def test_spec_validates() -> None:
    assert SamplerSpec() == SamplerSpec("dpmpp2m", 50, "uniform")
    with pytest.raises(ValueError, match="unknown sampler"):
        SamplerSpec("euler")
    with pytest.raises(ValueError, match="positive integer"):
        SamplerSpec("ddim", 0)
    with pytest.raises(ValueError, match="spacing"):
        SamplerSpec("ddim", 3, "karras")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        SamplerSpec().steps = 3  # type: ignore[misc]


def test_spec_accepts_the_distilled_name_which_needs_a_student() -> None:
    from hepvld.diffusion import DISTILLED, SAMPLER_NAMES, get_sampler

    spec = SamplerSpec(DISTILLED, 4)
    assert DISTILLED in SAMPLER_NAMES and DISTILLED not in SAMPLERS
    assert not spec.stochastic
    schedule = FixedLinearSchedule()
    noise = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="not a plain eps_fn"):
        spec.run(_eps, schedule.gamma, noise)

    class Student:  # what hepvld.models.student.StudentEps carries
        distilled_steps, times = 4, timesteps(4)

        def __call__(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return _eps(z, t)

    torch.testing.assert_close(
        spec.run(Student(), schedule.gamma, noise),
        SAMPLERS["ddim"](_eps, schedule.gamma, noise, steps=4),
    )
    with pytest.raises(ValueError, match="takes 4 steps on its own grid"):
        get_sampler(DISTILLED)(Student(), schedule.gamma, noise, steps=8)
    with pytest.raises(ValueError, match="distilled"):
        SamplerSpec("distiled", 4)
