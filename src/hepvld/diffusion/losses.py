r"""Loss terms of variational diffusion (VDM, Kingma et al. 2021) as used by VLD (eq. 8).

Shape legend (see ``docs/architecture.md``): ``B`` batch; ``E`` the event shape of the
diffused variable (``(D,)`` for a latent vector, ``(N, F)`` for a padded set). A ``mask``
has shape ``(B, *M)`` where ``M`` is a leading part of ``E`` (e.g. ``(B, N)`` for a set
``(B, N, F)``); True marks elements that count, the others contribute exactly 0 whatever
their values.

VLD's loss on a latent :math:`z_x` with condition :math:`z_y` is

.. math:: \underbrace{\mathrm{KL}(q(z_1|z_x)\,\|\,N(0, I))}_{\texttt{prior\_kl}}
   + \text{reconstruction}
   + \underbrace{\mathrm{KL}(q(z_x|x, z_y)\,\|\,p(z_x|z_0))}_{\texttt{latent\_kl}}
   + \underbrace{\tfrac12 E_{t,\epsilon}[\gamma'(t)\,\|\epsilon - \hat\epsilon(z_t, t)\|^2]}_{\texttt{continuous\_diffusion\_loss}}
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from hepvld.diffusion.schedules import NoiseSchedule, alpha_sigma_from_gamma

__all__ = [
    "EpsFn",
    "continuous_diffusion_loss",
    "diffuse",
    "gaussian_kl",
    "latent_kl",
    "latent_reconstruction",
    "prior_kl",
    "sample_times",
]

#: ε-prediction closure ``eps_fn(z_t (B, *E), t (B,)) -> eps_hat (B, *E)``.
EpsFn = Callable[[Tensor, Tensor], Tensor]


def _expand(c: Tensor, like: Tensor) -> Tensor:
    """View ``c`` of shape ``(B,)`` (or ``()``) as ``(B, 1, ..., 1)`` matching ``like.ndim``."""
    return c.reshape(c.shape + (1,) * (like.ndim - c.ndim))


def _masked_sum(values: Tensor, mask: Tensor | None) -> Tensor:
    """Sum ``values (B, *E)`` over ``E``, keeping only elements where ``mask (B, *M)`` holds."""
    if mask is not None:
        mask = mask.to(torch.bool)
        mask = mask.reshape(mask.shape + (1,) * (values.ndim - mask.ndim))
        values = torch.where(
            mask, values, torch.zeros((), dtype=values.dtype, device=values.device)
        )
    return values.flatten(1).sum(1)


def diffuse(z0: Tensor, gamma: Tensor, noise: Tensor) -> Tensor:
    r"""Forward process :math:`z_t = \alpha_t z_0 + \sigma_t \epsilon`.

    Parameters
    ----------
    z0 : (B, *E)
    gamma : (B,) or ()
        :math:`\gamma(t)` per example.
    noise : (B, *E)
        :math:`\epsilon \sim N(0, I)`.

    Returns
    -------
    Tensor (B, *E)
    """
    alpha, sigma = alpha_sigma_from_gamma(gamma)
    return _expand(alpha, z0) * z0 + _expand(sigma, z0) * noise


def continuous_diffusion_loss(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    z0: Tensor,
    t: Tensor,
    noise: Tensor,
    mask: Tensor | None = None,
) -> Tensor:
    r"""Continuous-time diffusion loss of VDM (:math:`T \to \infty`), one sample of ``t`` per example.

    .. math:: \mathcal{L}_\infty = \tfrac12\, \gamma'(t)\, \|\epsilon - \hat\epsilon(z_t, t)\|^2,
       \qquad z_t = \alpha_t z_0 + \sigma_t \epsilon,

    an unbiased estimate of the diffusion part of the negative ELBO when
    :math:`t \sim U(0, 1)`. Gradients reach both ``eps_fn``'s and ``schedule``'s parameters
    (through :math:`\gamma'(t)` and through :math:`z_t`).

    Parameters
    ----------
    eps_fn
        ``eps_fn(z_t (B, *E), t (B,)) -> (B, *E)``.
    schedule
        Provides ``gamma_and_derivative(t)``.
    z0 : (B, *E)
        Clean variable.
    t : (B,)
        Times in ``[0, 1]``, e.g. from :func:`sample_times`.
    noise : (B, *E)
        :math:`\epsilon \sim N(0, I)`.
    mask : (B, *M) bool, optional
        Elements to count (padding excluded); ``M`` a leading part of ``E``.

    Returns
    -------
    Tensor (B,)
    """
    gamma, dgamma = schedule.gamma_and_derivative(t)
    z_t = diffuse(z0, gamma, noise)
    error = (noise - eps_fn(z_t, t)).square()
    return 0.5 * dgamma * _masked_sum(error, mask)


def sample_times(
    batch: int,
    generator: torch.Generator | None = None,
    antithetic: bool = True,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""Diffusion times for one batch.

    With ``antithetic=True`` (VDM's low-discrepancy sampler) a single
    :math:`u \sim U(0, 1)` shifts an evenly spaced grid,
    :math:`t_i = (u + i / B) \bmod 1`: every :math:`t_i` is marginally uniform, but the
    batch covers ``[0, 1]`` evenly, which lowers the variance of the batch-mean loss.
    Otherwise the times are i.i.d. uniform.

    Parameters
    ----------
    batch
        Batch size ``B``.
    generator
        Source of randomness (on ``device``).
    antithetic
        Low-discrepancy (stratified) rather than i.i.d. times.
    device, dtype
        Of the result (default: torch defaults).

    Returns
    -------
    Tensor (B,)
        Times in ``[0, 1)``.
    """
    if not antithetic:
        return torch.rand(batch, generator=generator, device=device, dtype=dtype)
    u = torch.rand(1, generator=generator, device=device, dtype=dtype)
    grid = torch.arange(batch, device=device, dtype=u.dtype) / batch
    return torch.remainder(u + grid, 1.0)


def prior_kl(z0: Tensor, schedule: NoiseSchedule, mask: Tensor | None = None) -> Tensor:
    r""":math:`\mathrm{KL}(q(z_1|z_0)\,\|\,N(0, I))`, summed over the event dimensions.

    With :math:`q(z_1|z_0) = N(\alpha_1 z_0, \sigma_1^2)`,

    .. math:: \mathrm{KL} = \tfrac12 \sum \big(\sigma_1^2 + \alpha_1^2 z_0^2 - 1 - \log\sigma_1^2\big)
       = \tfrac12 \sum \big(\alpha_1^2 (z_0^2 - 1) - \log\mathrm{sigmoid}(\gamma_1)\big),

    the second form being the one computed (no cancellation for small :math:`\alpha_1`).
    Differentiable with respect to :math:`\gamma(1)`.

    Parameters
    ----------
    z0 : (B, *E)
    schedule
        Provides ``gamma(t)``.
    mask : (B, *M) bool, optional

    Returns
    -------
    Tensor (B,)
    """
    gamma_1 = schedule.gamma(torch.ones(1, dtype=z0.dtype, device=z0.device)).squeeze(0)
    alpha_sq = torch.sigmoid(-gamma_1)
    kl = 0.5 * (alpha_sq * (z0.square() - 1.0) - F.logsigmoid(gamma_1))
    return _masked_sum(kl, mask)


def latent_reconstruction(z0: Tensor, schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    r"""Parameters of :math:`p(z_x|z_0) = N(z_0/\alpha_0,\ (\sigma_0/\alpha_0)^2)`.

    Inverting the first diffusion step :math:`z_0 = \alpha_0 z_x + \sigma_0 \epsilon`;
    :math:`\log(\sigma_0/\alpha_0) = \gamma(0)/2` exactly.

    Parameters
    ----------
    z0 : (B, *E)
    schedule
        Provides ``gamma(t)``.

    Returns
    -------
    loc : (B, *E)
        :math:`z_0 / \alpha_0`.
    log_scale : (B, *E)
        :math:`\gamma(0)/2` (broadcast view).
    """
    gamma_0 = schedule.gamma(torch.zeros(1, dtype=z0.dtype, device=z0.device)).squeeze(0)
    alpha_0, _ = alpha_sigma_from_gamma(gamma_0)
    return z0 / alpha_0, (0.5 * gamma_0).expand_as(z0)


def gaussian_kl(
    mean_q: Tensor,
    log_std_q: Tensor,
    mean_p: Tensor,
    log_std_p: Tensor,
    mask: Tensor | None = None,
) -> Tensor:
    r""":math:`\mathrm{KL}(N(\mu_q, s_q^2)\,\|\,N(\mu_p, s_p^2))` of diagonal Gaussians, summed.

    .. math:: \sum \Big(\log s_p - \log s_q + \frac{s_q^2 + (\mu_q - \mu_p)^2}{2 s_p^2} - \tfrac12\Big)

    Parameters
    ----------
    mean_q, log_std_q, mean_p, log_std_p : (B, *E)
        (Broadcastable to a common ``(B, *E)``.)
    mask : (B, *M) bool, optional

    Returns
    -------
    Tensor (B,)
    """
    log_ratio = log_std_p - log_std_q
    squared_distance = (mean_q - mean_p).square() * torch.exp(-2.0 * log_std_p)
    kl = log_ratio + 0.5 * (torch.exp(-2.0 * log_ratio) + squared_distance) - 0.5
    return _masked_sum(kl, mask)


def latent_kl(
    mean: Tensor,
    log_std: Tensor,
    z0: Tensor,
    schedule: NoiseSchedule,
    mask: Tensor | None = None,
) -> Tensor:
    r"""VLD's latent term :math:`\mathrm{KL}(q(z_x|x, z_y)\,\|\,p(z_x|z_0))` (eq. 8).

    :math:`q = N(\text{mean}, \exp(\text{log\_std})^2)` is the VAE posterior and
    :math:`p(z_x|z_0)` is :func:`latent_reconstruction`.

    Parameters
    ----------
    mean, log_std : (B, *E)
        VAE posterior.
    z0 : (B, *E)
        :math:`z_0 = \alpha_0 z_x + \sigma_0 \epsilon` for a posterior draw :math:`z_x`.
    schedule
        Provides ``gamma(t)``.
    mask : (B, *M) bool, optional

    Returns
    -------
    Tensor (B,)
    """
    loc, log_scale = latent_reconstruction(z0, schedule)
    return gaussian_kl(mean, log_std, loc, log_scale, mask)
