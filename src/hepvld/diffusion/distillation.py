r"""Progressive distillation (Salimans & Ho 2022, arXiv 2202.00512): the maths.

A *student* learns to take **one** deterministic DDIM step from :math:`t_i` to
:math:`t_{i+2}` of a teacher's grid that lands where **two** teacher DDIM steps land; the
student's grid then has half the steps, and the student becomes the next round's teacher.

The student predicts :math:`v = \alpha\epsilon - \sigma x` (well conditioned at every
:math:`t`; with an ε-prediction, :math:`\hat x = (z - \sigma\hat\epsilon)/\alpha` amplifies
errors by :math:`1/\alpha`, about 12 at :math:`\gamma = 5`):

.. math:: \hat x = \alpha z - \sigma \hat v, \qquad \hat\epsilon = \sigma z + \alpha \hat v.

Target of one student step from :math:`z_t` given the teacher's two-step result
:math:`z_s` (:func:`ddim_target`), the :math:`\tilde x` whose DDIM step lands on it:

.. math:: \tilde x = \frac{z_s - (\sigma_s/\sigma_t)\, z_t}{\alpha_s - (\sigma_s/\sigma_t)\,\alpha_t},
   \qquad \tilde v = (\alpha_t z_t - \tilde x)/\sigma_t.

Weighting (:data:`WEIGHTINGS`, a factor on :math:`\|\hat v - \tilde v\|^2`): ``"snr+1"``
is the paper's "SNR+1" weighting :math:`(1 + \mathrm{SNR})\|\hat x - \tilde x\|^2`, i.e.
exactly the plain v-loss (factor 1); ``"truncated-snr"`` is
:math:`\max(\mathrm{SNR}, 1)\|\hat x - \tilde x\|^2`, factor :math:`\max(\alpha^2, \sigma^2)`.

Everything here is a pure function of tensors and γ (the schedule's
:math:`\gamma = -\log\mathrm{SNR}`); the models' students live in
:mod:`hepvld.models.student`, the rounds in :mod:`hepvld.training.distill`.
Shapes: ``B`` rows, ``E`` size of the diffused vector; ``gamma`` broadcasts against
``(B, E)`` (a scalar, or ``(B, 1)`` for one time per row).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from hepvld.diffusion.samplers import _ddim_step
from hepvld.diffusion.schedules import alpha_sigma_from_gamma

__all__ = [
    "WEIGHTINGS",
    "Targets",
    "VFn",
    "Weighting",
    "ddim_target",
    "eps_from_v",
    "loss_weight",
    "progressive_targets",
    "v_from_eps",
    "v_from_x",
    "x_from_v",
]

#: ``v_fn(z_t (B, E), t (B,)) -> v_hat (B, E)``: a v-predicting network at per-row times.
VFn = Callable[[Tensor, Tensor], Tensor]
Weighting = Literal["snr+1", "truncated-snr"]
#: Loss weightings of the paper (see the module docstring).
WEIGHTINGS: tuple[str, ...] = ("snr+1", "truncated-snr")


def eps_from_v(v: Tensor, z: Tensor, gamma: Tensor) -> Tensor:
    r""":math:`\hat\epsilon = \sigma z + \alpha \hat v`; ``v, z (B, E)``, ``gamma`` broadcasting."""
    alpha, sigma = alpha_sigma_from_gamma(gamma)
    return sigma * z + alpha * v


def x_from_v(v: Tensor, z: Tensor, gamma: Tensor) -> Tensor:
    r""":math:`\hat x = \alpha z - \sigma \hat v`; ``v, z (B, E)``, ``gamma`` broadcasting."""
    alpha, sigma = alpha_sigma_from_gamma(gamma)
    return alpha * z - sigma * v


def v_from_x(x: Tensor, z: Tensor, gamma: Tensor) -> Tensor:
    r""":math:`v = (\alpha z - x)/\sigma`; ``x, z (B, E)``, ``gamma`` broadcasting."""
    alpha, sigma = alpha_sigma_from_gamma(gamma)
    return (alpha * z - x) / sigma


def v_from_eps(eps: Tensor, z: Tensor, gamma: Tensor) -> Tensor:
    r""":math:`v = (\epsilon - \sigma z)/\alpha` (the v of an ε-prediction; divides by α)."""
    alpha, sigma = alpha_sigma_from_gamma(gamma)
    return (eps - sigma * z) / alpha


def ddim_target(z_t: Tensor, z_s: Tensor, gamma_t: Tensor, gamma_s: Tensor) -> Tensor:
    r"""The :math:`\tilde x` whose DDIM step from ``z_t`` at :math:`t` lands on ``z_s`` at
    :math:`s < t` (see the module docstring); ``z_t, z_s (B, E)``, γ broadcasting.

    The denominator :math:`\alpha_s - \alpha_t\sigma_s/\sigma_t` is positive because the
    SNR decreases with time; it is computed from log-scales (no cancellation at large γ).
    """
    log_alpha_t, log_alpha_s = 0.5 * F.logsigmoid(-gamma_t), 0.5 * F.logsigmoid(-gamma_s)
    log_sigma_t, log_sigma_s = 0.5 * F.logsigmoid(gamma_t), 0.5 * F.logsigmoid(gamma_s)
    ratio = torch.exp(log_sigma_s - log_sigma_t)
    # alpha_s - ratio * alpha_t = alpha_s (1 - exp(log(alpha_t sigma_s / (alpha_s sigma_t))))
    log_q = log_alpha_t + log_sigma_s - log_alpha_s - log_sigma_t
    denominator = -torch.exp(log_alpha_s) * torch.expm1(log_q)
    return (z_s - ratio * z_t) / denominator


def loss_weight(gamma: Tensor, weighting: Weighting = "snr+1") -> Tensor:
    r"""Factor on :math:`\|\hat v - \tilde v\|^2` of a weighting of :data:`WEIGHTINGS`.

    ``gamma (...)`` -> ``(...)``: ones for ``"snr+1"``, :math:`\max(\alpha^2, \sigma^2)`
    for ``"truncated-snr"``.
    """
    if weighting == "snr+1":
        return torch.ones_like(gamma)
    if weighting == "truncated-snr":
        return torch.sigmoid(gamma.abs())  # max(sigmoid(-γ), sigmoid(γ))
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


class Targets(NamedTuple):
    """One batch of progressive-distillation training pairs (:func:`progressive_targets`)."""

    #: ``(B, E)`` student inputs :math:`z_t`
    z_t: Tensor
    #: ``(B,)`` their times
    t: Tensor
    #: ``(B,)`` γ at those times
    gamma_t: Tensor
    #: ``(B, E)`` :math:`\tilde v`
    v_target: Tensor


def progressive_targets(
    teacher_eps: Callable[[Tensor, Tensor], Tensor],
    gamma_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    gamma_grid: Tensor | None = None,
) -> Targets:
    r"""One batch of progressive-distillation training pairs.

    For each row a student step :math:`k` is drawn uniformly from the student's
    ``(len(grid) - 1) // 2`` steps (times :math:`t = \mathrm{grid}[2k]`,
    :math:`t' = \mathrm{grid}[2k+1]`, :math:`s = \mathrm{grid}[2k+2]`), then
    :math:`z_t = \alpha_t x + \sigma_t\epsilon`, two teacher DDIM steps
    :math:`z_t \to z_{t'} \to z_s` (without gradients) and the target :math:`\tilde v` of
    :func:`ddim_target`.

    Parameters
    ----------
    teacher_eps
        ``teacher_eps(z (B, E), t (B,)) -> eps_hat (B, E)`` at per-row times.
    gamma_fn
        The schedule's γ (times ``(T,)`` -> ``(T,)``).
    x : (B, E)
        Clean samples of the diffused variable.
    grid : (2 M + 1,)
        The teacher's decreasing time grid (from 1 to 0, an even number ``2 M`` of steps).
    generator
        Source of the step indices, then of ε.
    gamma_grid : (2 M + 1,), optional
        ``gamma_fn(grid)``, when the caller has it (saves evaluating the schedule per row).

    Returns
    -------
    Targets
        ``z_t (B, E)``, ``t (B,)``, ``gamma_t (B,)``, ``v_target (B, E)``.
    """
    teacher_steps = len(grid) - 1
    if grid.ndim != 1 or teacher_steps < 2 or teacher_steps % 2:
        raise ValueError(f"the teacher grid needs an even number of steps, got {teacher_steps}")
    grid = grid.to(device=x.device, dtype=x.dtype)
    k = torch.randint(teacher_steps // 2, (x.shape[0],), generator=generator, device=x.device)
    t, t_mid = grid[2 * k], grid[2 * k + 1]
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    with torch.no_grad():
        g = gamma_fn(grid) if gamma_grid is None else gamma_grid.to(grid)
        g_t, g_mid, g_s = (g[i].unsqueeze(-1) for i in (2 * k, 2 * k + 1, 2 * k + 2))
        alpha_t, sigma_t = alpha_sigma_from_gamma(g_t)
        z_t = alpha_t * x + sigma_t * eps
        z_mid = _ddim_step(z_t, teacher_eps(z_t, t), g_t, g_mid)
        z_s = _ddim_step(z_mid, teacher_eps(z_mid, t_mid), g_mid, g_s)
        v_target = v_from_x(ddim_target(z_t, z_s, g_t, g_s), z_t, g_t)
    return Targets(z_t, t, g_t.squeeze(-1), v_target)
