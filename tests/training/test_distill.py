"""Progressive distillation of a tiny trained C-VLD: one round, the 4-step sampler, storage.

One module-scoped teacher (a ``tiny`` C-VLD trained for a few seconds on synthetic data
with a bimodal target, so that its latent flow is not a linear map) serves every test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hepvld.diffusion import SamplerSpec, timesteps
from hepvld.diffusion.distillation import ddim_target, eps_from_v, v_from_x, x_from_v
from hepvld.diffusion.samplers import _ddim_step, distilled
from hepvld.models import build_model, model_config
from hepvld.models.student import (
    DistilledDenoiser,
    attach_student,
    attach_students,
    available_steps,
    distilled_dir,
    save_student,
    state_digest,
)
from hepvld.training.distill import (
    DiffusionData,
    DistillConfig,
    cache_diffusion_data,
    distil,
    round_schedule,
)

B, N, F, G = 1536, 4, 4, 2


@pytest.fixture(scope="module")
def teacher() -> tuple[torch.nn.Module, DiffusionData]:
    """A tiny C-VLD trained 120 Adam steps on synthetic events, and its cached data."""
    g = torch.Generator().manual_seed(0)
    objects = torch.randn(B, N, F, generator=g)
    mix = torch.randn(F, 55, generator=g)
    sign = torch.where(torch.rand(B, 1, generator=g) < 0.5, -1.0, 1.0)
    targets = objects.mean(1) @ mix + 1.5 * sign + 0.3 * torch.randn(B, 55, generator=g)
    data = {
        "objects": objects,
        "mask": torch.ones(B, N, dtype=torch.bool),
        "globals": torch.randn(B, G, generator=g),
        "targets": targets.unflatten(-1, (11, 5)),
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_model(
            "c-vld", model_config("tiny", variant="c-vld"), object_features=F, global_features=G
        )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    net.train()
    for _ in range(120):
        idx = torch.randint(B, (128,), generator=gen)
        loss = net.loss({k: v[idx] for k, v in data.items()}, generator=gen)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval().requires_grad_(False)
    return net, cache_diffusion_data(net, data, batch_size=512)


def _meta(steps: int, grid: list[float], digest: str = "") -> dict[str, object]:
    return {"steps": steps, "grid": grid, "spacing": "uniform", "teacher": {"state_sha256": digest}}


# ----------------------------------------------------------------------------- maths
def test_ddim_target_is_the_x_whose_step_lands_on_the_teacher() -> None:
    gen = torch.Generator().manual_seed(0)
    z_t, z_s = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    g_t, g_s = torch.tensor(4.5), torch.tensor(-3.0)
    x = ddim_target(z_t, z_s, g_t, g_s)
    v = v_from_x(x, z_t, g_t)
    torch.testing.assert_close(x_from_v(v, z_t, g_t), x)
    landed = _ddim_step(z_t, eps_from_v(v, z_t, g_t), g_t, g_s)
    torch.testing.assert_close(landed, z_s, rtol=1e-5, atol=1e-5)


def test_round_schedule_halves_and_refuses_non_powers_of_two() -> None:
    assert round_schedule(64, 4) == [(64, 32), (32, 16), (16, 8), (8, 4)]
    for teacher_steps, steps in ((48, 4), (4, 4), (6, 4), (64, 0)):
        with pytest.raises(ValueError):
            round_schedule(teacher_steps, steps)


# ----------------------------------------------------------------------------- one round
def test_one_round_reproduces_two_teacher_steps(teacher: tuple) -> None:
    """After one round (4 -> 2 steps) the student's single step lands closer to the teacher's
    two steps than the untrained copy's step and than the teacher's own single step."""
    net, data = teacher
    config = DistillConfig(
        steps=2, teacher_steps=4, steps_per_round=200, batch_size=128, lr=1e-3, log_every=50
    )
    result = distil(net, data, config)
    (entry,) = result.rounds
    assert entry.optimiser_steps == 200 and entry.loss_last < entry.loss_first
    student, untrained = result.students[2], DistilledDenoiser(net.diffusion)
    assert result.grids[2] == [1.0, 0.5, 0.0]
    gamma, grid = net.diffusion.schedule.gamma, timesteps(4)
    gen = torch.Generator().manual_seed(7)  # fresh draws, not the training ones
    x = data.mean + data.std * torch.randn(data.mean.shape, generator=gen)
    z_y = data.condition
    errors: dict[str, float] = {"student": 0.0, "untrained": 0.0, "teacher, one step": 0.0}
    with torch.no_grad():
        for k in range(2):
            t, mid, s = (grid[i].expand(len(x)) for i in (2 * k, 2 * k + 1, 2 * k + 2))
            g_t, g_mid, g_s = gamma(t[:1]), gamma(mid[:1]), gamma(s[:1])
            z = torch.sigmoid(-g_t).sqrt() * x + torch.sigmoid(g_t).sqrt() * torch.randn(
                x.shape, generator=gen
            )
            z_mid = _ddim_step(z, net.diffusion.eps(z, t, z_y), g_t, g_mid)
            target = _ddim_step(z_mid, net.diffusion.eps(z_mid, mid, z_y), g_mid, g_s)
            steps = {
                "student": student.eps(z, t, z_y, gamma),
                "untrained": untrained.eps(z, t, z_y, gamma),
                "teacher, one step": net.diffusion.eps(z, t, z_y),
            }
            for name, eps in steps.items():
                errors[name] += float((_ddim_step(z, eps, g_t, g_s) - target).square().mean())
    assert errors["student"] < 0.5 * errors["untrained"], errors
    assert errors["student"] < 0.5 * errors["teacher, one step"], errors


def test_max_time_is_shared_by_the_rounds(teacher: tuple) -> None:
    net, data = teacher
    config = DistillConfig(
        steps=1, teacher_steps=8, steps_per_round=10**6, batch_size=32, max_time=0.3
    )
    result = distil(net, data, config)
    assert [r.student_steps for r in result.rounds] == [4, 2, 1]
    for entry in result.rounds:  # stopped by the clock, not by steps_per_round
        assert 1 <= entry.optimiser_steps < 10**6
        assert entry.wall_s < 5.0
    assert sorted(result.students) == [1, 2, 4]


# ----------------------------------------------------------------------------- 4 steps
def test_four_step_draws_match_the_teachers_64_step_ddim(teacher: tuple) -> None:
    """Per latent component, mean and std of the distilled 4-step draws equal those of the
    teacher's 64-step DDIM draws within 5 standard errors of a difference of two samples
    of this size; the untrained copy on the same grid does not (the check can fail)."""
    net, data = teacher
    config = DistillConfig(
        steps=4, teacher_steps=64, steps_per_round=80, batch_size=256, lr=3e-3, log_every=40
    )
    result = distil(net, data, config)
    assert [r.student_steps for r in result.rounds] == [32, 16, 8, 4]
    diffusion = net.diffusion
    noise = torch.randn(data.mean.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference = diffusion.denoise(
            noise, data.condition, sampler=SamplerSpec("ddim", 64), generator=None
        )

        def draws(student: DistilledDenoiser) -> torch.Tensor:
            attach_student(net, student, _meta(4, result.grids[4]))
            return diffusion.denoise(
                noise, data.condition, sampler=SamplerSpec("distilled", 4), generator=None
            )

        four = draws(result.students[4])
        untrained = draws(DistilledDenoiser(diffusion))
    diffusion.students = None
    n = len(noise)

    def z_scores(w: torch.Tensor) -> tuple[float, float]:
        var = w.var(0) + reference.var(0)
        mean_z = (w.mean(0) - reference.mean(0)).abs() / (var / n).sqrt()
        std_z = (w.std(0) - reference.std(0)).abs() / (var / (2 * n)).sqrt()
        return float(mean_z.max()), float(std_z.max())

    assert max(z_scores(four)) < 5.0, z_scores(four)
    assert max(z_scores(untrained)) > 5.0, z_scores(untrained)


# ----------------------------------------------------------------------------- storage
def test_save_load_round_trip_gives_bit_identical_draws(teacher: tuple, tmp_path: Path) -> None:
    net, data = teacher
    config = DistillConfig(steps=2, teacher_steps=4, steps_per_round=5, batch_size=64)
    result = distil(net, data, config)
    student = result.students[2]
    meta = {**_meta(2, result.grids[2], state_digest(net)), "rounds": []}
    save_student(distilled_dir(tmp_path), 2, student, meta)
    assert available_steps(distilled_dir(tmp_path)) == [2]
    assert json.loads((tmp_path / "distilled" / "steps-2.json").read_text())["steps"] == 2
    noise = torch.randn(64, *net.noise_shape, generator=torch.Generator().manual_seed(0))
    objects, mask = torch.randn(64, N, F), torch.ones(64, N, dtype=torch.bool)
    globals_ = torch.randn(64, G)
    spec = SamplerSpec("distilled", 2)

    def sample() -> torch.Tensor:
        return net.sample(
            objects, mask, globals_, sampler=spec, noise=noise.unsqueeze(1)
        ).values.clone()

    try:
        attach_student(net, student, meta)
        in_memory = sample()
        attach_students(net, tmp_path)  # a fresh store: loads steps-2 from disk
        from_disk = sample()
        assert torch.equal(in_memory, from_disk)
        # rows depend only on their own noise (per-event reproducibility)
        half = net.sample(
            objects[:32], mask[:32], globals_[:32], sampler=spec, noise=noise[:32].unsqueeze(1)
        ).values
        torch.testing.assert_close(half, from_disk[:32], rtol=1e-5, atol=1e-6)
        # a changed teacher is refused: the student was distilled from another state
        attach_students(net, tmp_path)
        with torch.no_grad():
            net.diffusion.schedule.gamma_max.add_(0.1)
        try:
            with pytest.raises(ValueError, match="another state of this network"):
                sample()
        finally:
            with torch.no_grad():
                net.diffusion.schedule.gamma_max.sub_(0.1)
    finally:
        net.diffusion.students = None


def test_distilled_sampler_errors_name_the_path_and_the_step_counts(
    teacher: tuple, tmp_path: Path
) -> None:
    net, _ = teacher
    objects, mask = torch.randn(3, N, F), torch.ones(3, N, dtype=torch.bool)
    globals_ = torch.randn(3, G)

    def sample(steps: int) -> None:
        net.sample(objects, mask, globals_, sampler=SamplerSpec("distilled", steps))

    try:
        net.diffusion.students = None
        with pytest.raises(ValueError, match=r"needs a distilled student.*hepvld distill"):
            sample(4)
        attach_students(net, tmp_path)
        with pytest.raises(ValueError, match=r"distilled/steps-4\.json.*none there"):
            sample(4)
        student = DistilledDenoiser(net.diffusion)
        save_student(distilled_dir(tmp_path), 2, student, _meta(2, [1.0, 0.5, 0.0]))
        save_student(distilled_dir(tmp_path), 8, student, _meta(8, [1 - i / 8 for i in range(9)]))
        with pytest.raises(ValueError, match=r"steps-4\.json\); available: 2, 8 steps"):
            sample(4)
    finally:
        net.diffusion.students = None
    with pytest.raises(ValueError, match="not a plain eps_fn"):
        distilled(lambda z, t: z, lambda t: t, torch.zeros(2, 3), steps=4)


def test_distillation_refuses_a_family_without_a_fixed_length_diffusion() -> None:
    net = build_model("cvae", model_config("tiny"), object_features=F, global_features=G)
    data = {
        "objects": torch.randn(4, N, F),
        "mask": torch.ones(4, N, dtype=torch.bool),
        "globals": torch.randn(4, G),
        "targets": torch.randn(4, 11, 5),
    }
    with pytest.raises(ValueError, match="VL-VLD's per-slot denoiser is not supported"):
        cache_diffusion_data(net, data)
