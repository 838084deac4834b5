r"""Samplers for variance-preserving diffusion, all with one signature.

.. code-block:: python

    z_0 = sampler(eps_fn, gamma_fn, noise, steps=50, generator=g)
    z_0 = sampler(eps_fn, gamma_fn, noise, times=grid, noise_fn=per_event_noise)
    z_0 = SamplerSpec("ddpm", steps=50).run(eps_fn, gamma_fn, noise, noise_fn=...)

``eps_fn(z_t (B, *E), t (B,)) -> eps_hat (B, *E)`` predicts the noise;
``gamma_fn(t (...)) -> gamma (...)`` is the schedule's :math:`\gamma(t) = -\log\mathrm{SNR}`
(pass the model's learned ``schedule.gamma``: the samplers know the process only through
it, with :math:`\alpha^2 = \mathrm{sigmoid}(-\gamma)`, :math:`\sigma^2 = \mathrm{sigmoid}(\gamma)`);
``noise (B, *E)`` is the starting point :math:`z_1`, normally drawn from :math:`N(0, I)`.

Time grid: ``steps + 1`` points :math:`t_i = 1 - i/\text{steps}` from 1 down to 0
(:func:`timesteps`; ``spacing="logsnr"`` makes it uniform in :math:`\gamma` instead).
Every sampler returns the state **at the last grid point** :math:`t = 0`, i.e. a draw of
:math:`z_0` (not a denoised :math:`\hat x_0`): the caller maps it to data with its own
:math:`p(z_x|z_0) = N(z_0/\alpha_0, \sigma_0/\alpha_0)`. Number of ``eps_fn`` calls (NFE):
``steps`` for ``ddpm``, ``ddim``, ``dpmpp2m``; ``steps + 9`` for ``pndm``
(``4 * steps`` when ``steps <= 3``).

``distilled`` (:data:`DISTILLED`) is not a solver of :data:`SAMPLERS` but a name that
:class:`SamplerSpec` accepts: DDIM on the grid of a progressive-distillation student
(:mod:`hepvld.diffusion.distillation`), whose ``eps_fn`` the model supplies
(:class:`hepvld.models.student.StudentEps`: a run's ``RUN/distilled/steps-N``); given any
other ``eps_fn`` it refuses rather than silently run DDIM on the teacher.

Samplers do not switch off autograd; call them under :func:`torch.no_grad` when sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from hepvld.diffusion.losses import EpsFn

__all__ = [
    "DISTILLED",
    "SAMPLERS",
    "SAMPLER_NAMES",
    "STOCHASTIC",
    "GammaFn",
    "NoiseFn",
    "Sampler",
    "SamplerSpec",
    "ddim",
    "ddpm",
    "distilled",
    "dpmpp2m",
    "get_sampler",
    "pndm",
    "timesteps",
]

#: Schedule closure ``gamma_fn(t (T,)) -> gamma (T, ...)``; ``gamma[i]`` must broadcast
#: against the diffused ``(B, *E)`` (a scalar per time, or per slot: ``(T, N, 1)``).
GammaFn = Callable[[Tensor], Tensor]
#: Per-step noise ``noise_fn(step, z (B, *E)) -> xi (B, *E)``.
NoiseFn = Callable[[int, Tensor], Tensor]
Spacing = Literal["uniform", "logsnr"]


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler and its options, as one value: ``SamplerSpec("ddim", steps=20)``.

    Attributes
    ----------
    name
        One of :data:`SAMPLER_NAMES`: a key of :data:`SAMPLERS` (``ddpm``, ``ddim``,
        ``pndm``, ``dpmpp2m``) or ``distilled`` (a run's distilled student, ``steps`` of
        the student's grid).
    steps
        Number of steps ``T`` (>= 1).
    spacing
        ``"uniform"`` in t or ``"logsnr"`` (see :func:`timesteps`).
    """

    name: str = "dpmpp2m"
    steps: int = 50
    spacing: Spacing = "uniform"

    def __post_init__(self) -> None:
        if self.name not in SAMPLER_NAMES:
            raise ValueError(
                f"unknown sampler {self.name!r}; choose one of {sorted(SAMPLER_NAMES)}"
            )
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if self.spacing not in ("uniform", "logsnr"):
            raise ValueError(f"spacing must be 'uniform' or 'logsnr', got {self.spacing!r}")

    @property
    def stochastic(self) -> bool:
        """True when the sampler draws fresh noise on each step (``ddpm``)."""
        return self.name in STOCHASTIC

    def times(self, gamma_fn: GammaFn, *, device: Any = None, dtype: Any = None) -> Tensor:
        """The ``(T + 1,)`` time grid from 1 to 0 of this spec (on ``gamma_fn`` for logsnr)."""
        return timesteps(
            self.steps, gamma_fn=gamma_fn, spacing=self.spacing, device=device, dtype=dtype
        )

    def run(
        self,
        eps_fn: EpsFn,
        gamma_fn: GammaFn,
        noise: Tensor,
        *,
        noise_fn: NoiseFn | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Run the sampler from ``noise (B, *E)`` on this spec's grid; returns :math:`z_0`."""
        times = self.times(gamma_fn, device=noise.device, dtype=noise.dtype)
        return get_sampler(self.name)(
            eps_fn, gamma_fn, noise, times=times, noise_fn=noise_fn, generator=generator
        )


class Sampler(Protocol):
    """Signature shared by every sampler in :data:`SAMPLERS`."""

    def __call__(
        self,
        eps_fn: EpsFn,
        gamma_fn: GammaFn,
        noise: Tensor,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        spacing: Spacing = "uniform",
        times: Tensor | None = None,
        noise_fn: NoiseFn | None = None,
    ) -> Tensor: ...


def timesteps(
    steps: int,
    *,
    gamma_fn: GammaFn | None = None,
    spacing: Spacing = "uniform",
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""Decreasing time grid from ``t = 1`` to ``t = 0``.

    Parameters
    ----------
    steps
        Number of steps ``T`` (at least 1).
    gamma_fn
        Needed for ``spacing="logsnr"``.
    spacing
        ``"uniform"``: :math:`t_i = 1 - i/T`. ``"logsnr"``: :math:`\gamma(t_i)` uniform
        between :math:`\gamma(1)` and :math:`\gamma(0)` (``gamma_fn`` inverted by bisection,
        assuming it is increasing).
    device, dtype
        Of the result.

    Returns
    -------
    Tensor (T + 1,)
        ``t[0] = 1``, ``t[T] = 0``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    grid = torch.linspace(1.0, 0.0, steps + 1, device=device, dtype=dtype)
    if spacing == "uniform":
        pass
    elif spacing == "logsnr":
        if gamma_fn is None:
            raise ValueError("spacing='logsnr' needs gamma_fn")
        with torch.no_grad():
            ends = gamma_fn(grid[[0, -1]])
            target = ends[0] + (ends[1] - ends[0]) * torch.linspace(
                0.0, 1.0, steps + 1, device=grid.device, dtype=grid.dtype
            )
            low, high = torch.zeros_like(grid), torch.ones_like(grid)
            for _ in range(60):
                mid = 0.5 * (low + high)
                below = gamma_fn(mid) < target
                low, high = torch.where(below, mid, low), torch.where(below, high, mid)
            grid = 0.5 * (low + high)
    else:
        raise ValueError(f"spacing must be 'uniform' or 'logsnr', got {spacing!r}")
    grid[0], grid[-1] = 1.0, 0.0
    return grid


def _grid(
    gamma_fn: GammaFn, noise: Tensor, steps: int | None, spacing: Spacing, times: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The time grid (given, or built from ``steps``/``spacing``) and γ on it, ``gamma[i]``
    broadcasting against ``noise`` (scalar, or per slot for a per-slot schedule)."""
    if times is None:
        if steps is None:
            raise ValueError("a sampler needs steps or times")
        t = timesteps(
            steps, gamma_fn=gamma_fn, spacing=spacing, device=noise.device, dtype=noise.dtype
        )
    else:
        t = times.to(device=noise.device, dtype=noise.dtype)
        if t.ndim != 1 or len(t) < 2:
            raise ValueError(f"times must be a 1-d grid of >= 2 points, got {tuple(t.shape)}")
    return t, gamma_fn(t)


def _call(eps_fn: EpsFn, z: Tensor, t: Tensor) -> Tensor:
    """``eps_fn`` at the scalar time ``t`` for the whole batch."""
    return eps_fn(z, t.expand(z.shape[0]))


def _ddim_step(z: Tensor, eps: Tensor, gamma_t: Tensor, gamma_s: Tensor) -> Tensor:
    r"""Deterministic transfer :math:`z_s = \alpha_s \hat x_0 + \sigma_s \hat\epsilon` (DDIM, η = 0)."""
    # alpha_s / alpha_t and sigma_s - alpha_s sigma_t / alpha_t, in log space
    log_alpha_t, log_alpha_s = 0.5 * F.logsigmoid(-gamma_t), 0.5 * F.logsigmoid(-gamma_s)
    ratio = torch.exp(log_alpha_s - log_alpha_t)
    sigma_t, sigma_s = (
        torch.exp(0.5 * F.logsigmoid(gamma_t)),
        torch.exp(0.5 * F.logsigmoid(gamma_s)),
    )
    return ratio * z + (sigma_s - ratio * sigma_t) * eps


def ddpm(
    eps_fn: EpsFn,
    gamma_fn: GammaFn,
    noise: Tensor,
    *,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    spacing: Spacing = "uniform",
    times: Tensor | None = None,
    noise_fn: NoiseFn | None = None,
) -> Tensor:
    r"""Ancestral sampling, VDM's step from :math:`t` to :math:`s < t`.

    .. math:: z_s = \frac{\alpha_s}{\alpha_t}\big(z_t - \sigma_t c\, \hat\epsilon\big)
       + \sigma_s \sqrt{c}\, \xi, \qquad c = 1 - e^{\gamma_s - \gamma_t},\ \xi \sim N(0, I),

    the mean and spread of :math:`q(z_s | z_t, \hat x_0)`. Noise is added on every step,
    the last (to :math:`t = 0`) included.

    Parameters
    ----------
    eps_fn, gamma_fn
        See the module docstring.
    noise : (B, *E)
        :math:`z_1`.
    steps
        Number of steps (= NFE).
    generator
        Source of the per-step noise.
    spacing
        Time grid, see :func:`timesteps`.
    times : (T + 1,), optional
        The time grid itself (from 1 down to 0); overrides ``steps`` and ``spacing``.
    noise_fn
        ``noise_fn(step, z) -> xi`` like ``z``: the per-step noise (``ddpm``; e.g. keyed per
        event so that draws are reproducible per event); default ``randn(generator)``.

    Returns
    -------
    Tensor (B, *E)
        :math:`z_0`.
    """
    t, gamma = _grid(gamma_fn, noise, steps, spacing, times)
    steps = len(t) - 1
    z = noise
    for i in range(steps):
        gamma_t, gamma_s = gamma[i], gamma[i + 1]
        eps = _call(eps_fn, z, t[i])
        c = -torch.expm1(gamma_s - gamma_t)
        ratio = torch.exp(0.5 * (F.logsigmoid(-gamma_s) - F.logsigmoid(-gamma_t)))
        sigma_t, sigma_s = (
            torch.exp(0.5 * F.logsigmoid(gamma_t)),
            torch.exp(0.5 * F.logsigmoid(gamma_s)),
        )
        xi = (
            torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            if noise_fn is None
            else noise_fn(i, z)
        )
        z = ratio * (z - sigma_t * c * eps) + sigma_s * c.sqrt() * xi
    return z


def ddim(
    eps_fn: EpsFn,
    gamma_fn: GammaFn,
    noise: Tensor,
    *,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    spacing: Spacing = "uniform",
    times: Tensor | None = None,
    noise_fn: NoiseFn | None = None,
) -> Tensor:
    r"""Deterministic DDIM (η = 0): first-order solver of the probability-flow ODE.

    .. math:: \hat x_0 = (z_t - \sigma_t \hat\epsilon)/\alpha_t, \qquad
       z_s = \alpha_s \hat x_0 + \sigma_s \hat\epsilon.

    Parameters
    ----------
    eps_fn, gamma_fn
        See the module docstring.
    noise : (B, *E)
        :math:`z_1`.
    steps
        Number of steps (= NFE).
    generator
        Unused (deterministic); accepted for the common signature.
    spacing
        Time grid, see :func:`timesteps`.
    times : (T + 1,), optional
        The time grid itself (from 1 down to 0); overrides ``steps`` and ``spacing``.
    noise_fn
        ``noise_fn(step, z) -> xi`` like ``z``: the per-step noise (``ddpm``; e.g. keyed per
        event so that draws are reproducible per event); default ``randn(generator)``.

    Returns
    -------
    Tensor (B, *E)
        :math:`z_0`.
    """
    t, gamma = _grid(gamma_fn, noise, steps, spacing, times)
    steps = len(t) - 1
    z = noise
    for i in range(steps):
        z = _ddim_step(z, _call(eps_fn, z, t[i]), gamma[i], gamma[i + 1])
    return z


def pndm(
    eps_fn: EpsFn,
    gamma_fn: GammaFn,
    noise: Tensor,
    *,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    spacing: Spacing = "uniform",
    times: Tensor | None = None,
    noise_fn: NoiseFn | None = None,
) -> Tensor:
    r"""Pseudo numerical method (PNDM, Liu et al. 2022), the VLD paper's sampler.

    The transfer :math:`\phi(z_t, \hat\epsilon, t \to s)` is the DDIM step. The first
    three steps are pseudo Runge–Kutta (F-PNDM warm-up, four ``eps_fn`` calls each, at
    :math:`t`, twice at the midpoint, and at :math:`s`, combined as
    :math:`(e_1 + 2e_2 + 2e_3 + e_4)/6`); the remaining steps are the fourth-order
    pseudo linear multistep (PLMS)

    .. math:: \hat\epsilon' = \tfrac{1}{24}(55 e_t - 59 e_{t+1} + 37 e_{t+2} - 9 e_{t+3}),

    one call each, using the first evaluations :math:`e_1` of the warm-up steps as history.

    Parameters
    ----------
    eps_fn, gamma_fn
        See the module docstring.
    noise : (B, *E)
        :math:`z_1`.
    steps
        Number of steps (NFE ``steps + 9``, or ``4 * steps`` when ``steps <= 3``).
    generator
        Unused (deterministic); accepted for the common signature.
    spacing
        Time grid, see :func:`timesteps`.
    times : (T + 1,), optional
        The time grid itself (from 1 down to 0); overrides ``steps`` and ``spacing``.
    noise_fn
        ``noise_fn(step, z) -> xi`` like ``z``: the per-step noise (``ddpm``; e.g. keyed per
        event so that draws are reproducible per event); default ``randn(generator)``.

    Returns
    -------
    Tensor (B, *E)
        :math:`z_0`.
    """
    t, gamma = _grid(gamma_fn, noise, steps, spacing, times)
    steps = len(t) - 1
    t_mid = 0.5 * (t[:-1] + t[1:])
    gamma_mid = gamma_fn(t_mid[: min(3, steps)])
    z = noise
    history: list[Tensor] = []
    for i in range(steps):
        gamma_t, gamma_s = gamma[i], gamma[i + 1]
        e1 = _call(eps_fn, z, t[i])
        if i < 3:
            gm = gamma_mid[i]
            e2 = _call(eps_fn, _ddim_step(z, e1, gamma_t, gm), t_mid[i])
            e3 = _call(eps_fn, _ddim_step(z, e2, gamma_t, gm), t_mid[i])
            e4 = _call(eps_fn, _ddim_step(z, e3, gamma_t, gamma_s), t[i + 1])
            eps = (e1 + 2.0 * e2 + 2.0 * e3 + e4) / 6.0
        else:
            e_1, e_2, e_3 = history[-1], history[-2], history[-3]
            eps = (55.0 * e1 - 59.0 * e_1 + 37.0 * e_2 - 9.0 * e_3) / 24.0
        history = [*history[-2:], e1]
        z = _ddim_step(z, eps, gamma_t, gamma_s)
    return z


def dpmpp2m(
    eps_fn: EpsFn,
    gamma_fn: GammaFn,
    noise: Tensor,
    *,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    spacing: Spacing = "uniform",
    times: Tensor | None = None,
    noise_fn: NoiseFn | None = None,
) -> Tensor:
    r"""DPM-Solver++(2M) (Lu et al. 2022): second-order multistep in :math:`\lambda = -\gamma/2`.

    With the data prediction :math:`\hat x_0^{(i)} = (z_{t_i} - \sigma_{t_i}\hat\epsilon)/\alpha_{t_i}`,
    :math:`h_i = \lambda_{t_{i+1}} - \lambda_{t_i}` and :math:`r = h_{i-1}/h_i`,

    .. math:: D_i = (1 + \tfrac{1}{2r})\,\hat x_0^{(i)} - \tfrac{1}{2r}\,\hat x_0^{(i-1)},
       \qquad z_{t_{i+1}} = \frac{\sigma_{t_{i+1}}}{\sigma_{t_i}} z_{t_i}
       - \alpha_{t_{i+1}} (e^{-h_i} - 1)\, D_i,

    with :math:`D_0 = \hat x_0^{(0)}` (first step first order, i.e. DDIM).

    Parameters
    ----------
    eps_fn, gamma_fn
        See the module docstring.
    noise : (B, *E)
        :math:`z_1`.
    steps
        Number of steps (= NFE).
    generator
        Unused (deterministic); accepted for the common signature.
    spacing
        Time grid, see :func:`timesteps`.
    times : (T + 1,), optional
        The time grid itself (from 1 down to 0); overrides ``steps`` and ``spacing``.
    noise_fn
        ``noise_fn(step, z) -> xi`` like ``z``: the per-step noise (``ddpm``; e.g. keyed per
        event so that draws are reproducible per event); default ``randn(generator)``.

    Returns
    -------
    Tensor (B, *E)
        :math:`z_0`.
    """
    t, gamma = _grid(gamma_fn, noise, steps, spacing, times)
    steps = len(t) - 1
    log_alpha, log_sigma = 0.5 * F.logsigmoid(-gamma), 0.5 * F.logsigmoid(gamma)
    lam = -0.5 * gamma
    z = noise
    x0_prev: Tensor | None = None
    h_prev: Tensor | None = None
    for i in range(steps):
        eps = _call(eps_fn, z, t[i])
        x0 = (z - log_sigma[i].exp() * eps) / log_alpha[i].exp()
        h = lam[i + 1] - lam[i]
        if x0_prev is None or h_prev is None:
            d = x0
        else:
            half_inv_r = 0.5 * h / h_prev
            d = (1.0 + half_inv_r) * x0 - half_inv_r * x0_prev
        z = (
            torch.exp(log_sigma[i + 1] - log_sigma[i]) * z
            - log_alpha[i + 1].exp() * torch.expm1(-h) * d
        )
        x0_prev, h_prev = x0, h
    return z


def distilled(
    eps_fn: EpsFn,
    gamma_fn: GammaFn,
    noise: Tensor,
    *,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    spacing: Spacing = "uniform",
    times: Tensor | None = None,
    noise_fn: NoiseFn | None = None,
) -> Tensor:
    r"""The distilled sampler: :func:`ddim` with a distilled student's ``eps_fn`` on its grid.

    ``eps_fn`` must be a student's (an object with ``distilled_steps`` and ``times``, as
    :class:`hepvld.models.student.StudentEps`; a model loaded with ``hepvld.load`` builds
    it for ``SamplerSpec("distilled", steps)``), and the grid (``steps``/``spacing`` or
    ``times``) must be the one it was distilled on.

    Raises
    ------
    ValueError
        A plain ``eps_fn`` (no student), or a grid the student was not distilled on.
    """
    student_steps = getattr(eps_fn, "distilled_steps", None)
    student_times = getattr(eps_fn, "times", None)
    if student_steps is None or student_times is None:
        raise ValueError(
            "the 'distilled' sampler runs a distilled student, not a plain eps_fn: load the "
            "run with hepvld.load(RUN) after `hepvld distill RUN --steps N` and sample with "
            "SamplerSpec('distilled', steps=N)"
        )
    t, _ = _grid(gamma_fn, noise, steps, spacing, times)
    grid = student_times.to(device=t.device, dtype=t.dtype)
    if len(t) != len(grid) or not torch.allclose(t, grid, rtol=0.0, atol=1e-6):
        raise ValueError(
            f"the distilled student takes {student_steps} steps on its own grid "
            f"{[round(float(u), 6) for u in grid]}; got the grid "
            f"{[round(float(u), 6) for u in t]}"
        )
    return ddim(eps_fn, gamma_fn, noise, times=grid)


#: Registered samplers (ODE/SDE solvers for any ``eps_fn``) by name.
SAMPLERS: dict[str, Sampler] = {"ddpm": ddpm, "ddim": ddim, "pndm": pndm, "dpmpp2m": dpmpp2m}
#: The distilled sampler's name: accepted by :class:`SamplerSpec`, not a key of
#: :data:`SAMPLERS` (it needs a model's student, see :func:`distilled`).
DISTILLED = "distilled"
#: Every name a :class:`SamplerSpec` (and ``--sampler``) accepts.
SAMPLER_NAMES: tuple[str, ...] = (*SAMPLERS, DISTILLED)
#: Samplers that draw noise on each step (per-event reproducible through ``noise_fn``).
STOCHASTIC: tuple[str, ...] = ("ddpm",)


def get_sampler(name: str) -> Sampler:
    """The sampler of ``name``: a key of :data:`SAMPLERS`, or :data:`DISTILLED` (:func:`distilled`).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    if name == DISTILLED:
        return distilled
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(
            f"unknown sampler {name!r}; choose one of {sorted(SAMPLER_NAMES)}"
        ) from None
