r"""Variance-preserving noise schedules parameterised by :math:`\gamma(t) = -\log \mathrm{SNR}(t)`.

For :math:`t \in [0, 1]` the forward process is :math:`z_t = \alpha_t z_0 + \sigma_t \epsilon`
with

.. math:: \sigma_t^2 = \mathrm{sigmoid}(\gamma(t)), \qquad \alpha_t^2 = \mathrm{sigmoid}(-\gamma(t)),

so :math:`\alpha_t^2 + \sigma_t^2 = 1` and :math:`\log \mathrm{SNR} = \log(\alpha_t^2/\sigma_t^2)
= -\gamma(t)`. :math:`\gamma` increases with :math:`t`: :math:`t = 0` is (almost) clean,
:math:`t = 1` (almost) pure noise.

Every schedule is an :class:`torch.nn.Module` with ``gamma(t)``, ``alpha_sigma(t)`` and
``gamma_and_derivative(t)``; ``t`` may have any shape ``(...)`` and the outputs have the
same shape (``(B,)`` in the usual case). Calling the module is ``gamma``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CosineSchedule",
    "FixedLinearSchedule",
    "LearnedSchedule",
    "NoiseSchedule",
    "SlotSchedule",
    "alpha_sigma_from_gamma",
]


def alpha_sigma_from_gamma(gamma: Tensor) -> tuple[Tensor, Tensor]:
    r"""Signal and noise scales of a variance-preserving process.

    :math:`\alpha = \sqrt{\mathrm{sigmoid}(-\gamma)}`, :math:`\sigma = \sqrt{\mathrm{sigmoid}(\gamma)}`,
    computed as ``exp(logsigmoid(.) / 2)`` so that neither underflows to a spurious 0 nor
    rounds to 1 before it has to.

    Parameters
    ----------
    gamma : (...)

    Returns
    -------
    alpha, sigma : (...)
    """
    return torch.exp(0.5 * F.logsigmoid(-gamma)), torch.exp(0.5 * F.logsigmoid(gamma))


class NoiseSchedule(nn.Module):
    """Base class: subclasses implement :meth:`gamma`; the rest follows.

    :meth:`gamma_and_derivative` defaults to autograd (``create_graph`` when grad mode is
    on, so that a loss using ``dγ/dt`` backpropagates into the schedule's parameters);
    subclasses with a closed form override it.
    """

    def gamma(self, t: Tensor) -> Tensor:
        r"""Negative log signal-to-noise ratio :math:`\gamma(t)`.

        Parameters
        ----------
        t : (...)
            Times in ``[0, 1]``.

        Returns
        -------
        Tensor (...)
        """
        raise NotImplementedError

    def forward(self, t: Tensor) -> Tensor:
        """Same as :meth:`gamma`."""
        return self.gamma(t)

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        r"""Scales :math:`(\alpha_t, \sigma_t)`, each of the shape ``(...)`` of ``t``."""
        return alpha_sigma_from_gamma(self.gamma(t))

    def gamma_and_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        r""":math:`\gamma(t)` and its exact time derivative :math:`d\gamma/dt`.

        Parameters
        ----------
        t : (...)

        Returns
        -------
        gamma, dgamma_dt : (...)
            Differentiable with respect to the schedule's parameters when grad mode is on
            (no gradient flows back into ``t`` itself).
        """
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            t_ = t.detach().requires_grad_(True)
            gamma = self.gamma(t_)
            (dgamma,) = torch.autograd.grad(gamma.sum(), t_, create_graph=create_graph)
        if not create_graph:
            gamma = gamma.detach()
        return gamma, dgamma


class FixedLinearSchedule(NoiseSchedule):
    r""":math:`\gamma(t) = \gamma_\min + (\gamma_\max - \gamma_\min)\, t` (VDM's fixed baseline).

    Parameters
    ----------
    gamma_min, gamma_max
        :math:`\gamma(0)` and :math:`\gamma(1)`.
    """

    gamma_min: Tensor
    gamma_max: Tensor

    def __init__(self, gamma_min: float = -13.3, gamma_max: float = 5.0) -> None:
        super().__init__()
        _check_endpoints(gamma_min, gamma_max)
        self.register_buffer("gamma_min", torch.tensor(float(gamma_min)))
        self.register_buffer("gamma_max", torch.tensor(float(gamma_max)))

    def gamma(self, t: Tensor) -> Tensor:
        return self.gamma_min.to(t) + (self.gamma_max - self.gamma_min).to(t) * t

    def gamma_and_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        slope = (self.gamma_max - self.gamma_min).to(t)
        return self.gamma(t), slope.expand_as(t)


class CosineSchedule(NoiseSchedule):
    r"""Cosine schedule (Nichol & Dhariwal 2021), truncated to :math:`[\gamma_\min, \gamma_\max]`.

    With :math:`\alpha = \cos(\pi u / 2)`, :math:`\sigma = \sin(\pi u / 2)`, i.e.
    :math:`\gamma = 2 \log \tan(\pi u / 2)`, and :math:`u = u_0 + (u_1 - u_0)\,t` where
    :math:`u_{0,1} = \frac{2}{\pi}\arctan e^{\gamma_{\min,\max}/2}`, so that
    :math:`\gamma(0) = \gamma_\min`, :math:`\gamma(1) = \gamma_\max`.
    Derivative: :math:`d\gamma/dt = 2\pi (u_1 - u_0) / \sin(\pi u)`.

    Parameters
    ----------
    gamma_min, gamma_max
        :math:`\gamma(0)` and :math:`\gamma(1)`.
    """

    def __init__(self, gamma_min: float = -13.3, gamma_max: float = 5.0) -> None:
        super().__init__()
        _check_endpoints(gamma_min, gamma_max)
        self.u_min = 2.0 / math.pi * math.atan(math.exp(gamma_min / 2.0))
        self.u_max = 2.0 / math.pi * math.atan(math.exp(gamma_max / 2.0))

    def _u(self, t: Tensor) -> Tensor:
        return self.u_min + (self.u_max - self.u_min) * t

    def gamma(self, t: Tensor) -> Tensor:
        angle = 0.5 * math.pi * self._u(t)
        return 2.0 * (torch.log(torch.sin(angle)) - torch.log(torch.cos(angle)))

    def gamma_and_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        u = self._u(t)
        return self.gamma(t), 2.0 * math.pi * (self.u_max - self.u_min) / torch.sin(math.pi * u)


class _MonotoneLinear(nn.Linear):
    """Linear layer with non-negative weights ``|W|`` (VDM's ``DenseMonotone``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.abs(), self.bias)


class LearnedSchedule(NoiseSchedule):
    r"""Learned monotone :math:`\gamma(t)` with learnable endpoints (VDM, Kingma et al. 2021).

    An unnormalised monotone network (VDM Appendix, ``NoiseSchedule_NNet``)

    .. math:: \tilde\gamma(t) = l_1(t) + \frac{1}{H}\, l_3\big(2\,\mathrm{sigmoid}(l_2(2t - 1)) - 1\big)

    with positive-weight linear layers :math:`l_1: 1 \to 1`, :math:`l_2: 1 \to H`,
    :math:`l_3: H \to 1` (:math:`l_1`, :math:`l_3` without the biases, which would
    cancel below) is rescaled onto learnable endpoints

    .. math:: \gamma(t) = \gamma_\min + (\gamma_\max - \gamma_\min)
       \frac{\tilde\gamma(t) - \tilde\gamma(0)}{\tilde\gamma(1) - \tilde\gamma(0)},

    so :math:`\gamma(0) = \gamma_\min`, :math:`\gamma(1) = \gamma_\max` exactly and
    :math:`\gamma` is increasing (:math:`l_1` has a strictly positive slope). At
    initialisation the non-linear part is small and :math:`\gamma` is nearly linear.
    :meth:`gamma_and_derivative` is closed-form.

    Parameters
    ----------
    gamma_min, gamma_max
        Initial :math:`\gamma(0)` and :math:`\gamma(1)` (both learnable).
    hidden
        Width ``H`` of the non-linear part; 0 gives a learnable linear schedule.
    """

    def __init__(
        self, gamma_min: float = -13.3, gamma_max: float = 5.0, hidden: int = 1024
    ) -> None:
        super().__init__()
        _check_endpoints(gamma_min, gamma_max)
        self.hidden = hidden
        self.gamma_min = nn.Parameter(torch.tensor(float(gamma_min)))
        self.gamma_max = nn.Parameter(torch.tensor(float(gamma_max)))
        self.l1 = _MonotoneLinear(1, 1, bias=False)  # a bias would cancel in the normalisation
        nn.init.ones_(self.l1.weight)
        self.l2 = _MonotoneLinear(1, hidden) if hidden > 0 else None
        self.l3 = _MonotoneLinear(hidden, 1, bias=False) if hidden > 0 else None

    def _gamma_tilde(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Unnormalised :math:`\\tilde\\gamma(t)` and its derivative, shapes ``(...)``."""
        x = t.unsqueeze(-1)
        value = self.l1(x).squeeze(-1)
        slope = self.l1.weight.abs().squeeze()
        derivative = slope.expand_as(value)
        if self.l2 is not None and self.l3 is not None:
            s = torch.sigmoid(self.l2(2.0 * x - 1.0))  # (..., H)
            w2 = self.l2.weight.abs().squeeze(-1)  # (H,)
            w3 = self.l3.weight.abs().squeeze(0)  # (H,)
            value = value + self.l3(2.0 * s - 1.0).squeeze(-1) / self.hidden
            derivative = derivative + (s * (1.0 - s) * (4.0 * w2 * w3)).sum(-1) / self.hidden
        return value, derivative

    def _normalisation(self, t: Tensor) -> tuple[Tensor, Tensor]:
        ends, _ = self._gamma_tilde(torch.tensor([0.0, 1.0], dtype=t.dtype, device=t.device))
        return ends[0], ends[1] - ends[0]

    def gamma(self, t: Tensor) -> Tensor:
        offset, span = self._normalisation(t)
        value, _ = self._gamma_tilde(t)
        return self.gamma_min + (self.gamma_max - self.gamma_min) * (value - offset) / span

    def gamma_and_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        offset, span = self._normalisation(t)
        value, derivative = self._gamma_tilde(t)
        scale = (self.gamma_max - self.gamma_min) / span
        return self.gamma_min + scale * (value - offset), scale * derivative


class SlotSchedule(NoiseSchedule):
    r"""A learned monotone :math:`\gamma_k(t)` per slot ``k`` (VL-VLD), from a slot embedding.

    Each slot has a learned embedding :math:`e_k`; a linear head maps it to the
    parameters of a monotone network of the :class:`LearnedSchedule` form,

    .. math:: \tilde\gamma_k(t) = a_k t + \frac{1}{H} \sum_h w_{kh}\,
       \big(2\,\mathrm{sigmoid}(v_{kh} (2t - 1) + b_{kh}) - 1\big),

    with :math:`a_k, w_{kh}, v_{kh} > 0` (softplus), rescaled onto the slot's endpoints
    :math:`\gamma_k(0) = \gamma_{\min,k}` and :math:`\gamma_k(1) = \gamma_{\min,k} +
    \mathrm{softplus}(\delta_k)` (so :math:`\gamma_k` is strictly increasing). At
    initialisation every slot has the linear schedule from ``gamma_min`` to ``gamma_max``.
    :meth:`gamma_and_derivative` is closed-form (exact :math:`\gamma'`).

    ``gamma(t)`` maps times ``(...)`` to ``(..., K)``: one value per slot; for the
    samplers (which need :math:`\gamma` to broadcast against ``(B, K, D)``) use
    :meth:`per_slot` ``(..., K, 1)``.

    Parameters
    ----------
    slots
        ``K``.
    gamma_min, gamma_max
        Initial endpoints (every slot).
    hidden
        ``H``; 0: a learned linear schedule per slot.
    embedding_dim
        Size of the slot embedding.
    learn_gamma_0
        Learn :math:`\gamma_k(0)` too; False keeps it at ``gamma_min`` (the shape and
        :math:`\gamma_k(1)` are still learned per slot). Measured on VL-VLD: with it
        learned, the diffusion loss drove :math:`\gamma_k(0)` from -4 to +7 (a latent that
        is noise at t = 0) and the reconstruction collapsed (benchmarks/README.md).
    """

    gamma_0: Tensor

    def __init__(
        self,
        slots: int,
        gamma_min: float = -4.0,
        gamma_max: float = 5.0,
        hidden: int = 16,
        embedding_dim: int = 16,
        learn_gamma_0: bool = True,
    ) -> None:
        super().__init__()
        _check_endpoints(gamma_min, gamma_max)
        self.learn_gamma_0 = bool(learn_gamma_0)
        self.register_buffer("gamma_0", torch.tensor(float(gamma_min)))
        self.slots = int(slots)
        self.hidden = int(hidden)
        self.embedding = nn.Parameter(0.1 * torch.randn(self.slots, embedding_dim))
        # parameters per slot: gamma_min, delta, a, then w, v, b (H each)
        self.head = nn.Linear(embedding_dim, 3 + 3 * self.hidden)
        nn.init.normal_(self.head.weight, std=1e-3)
        bias = torch.zeros(3 + 3 * self.hidden)
        bias[0] = gamma_min
        bias[1] = _inverse_softplus(gamma_max - gamma_min)
        bias[2] = _inverse_softplus(1.0)
        bias[3 : 3 + self.hidden] = -4.0  # small non-linear part at initialisation
        bias[3 + self.hidden : 3 + 2 * self.hidden] = _inverse_softplus(1.0)
        with torch.no_grad():
            self.head.bias.copy_(bias)
            # spread the sigmoids' centres over [-1, 1] so the slots can bend anywhere
            if self.hidden:
                centres = torch.linspace(-1.0, 1.0, self.hidden)
                self.head.bias[3 + 2 * self.hidden :] = -centres

    def _slot_parameters(self) -> tuple[Tensor, ...]:
        p = self.head(self.embedding)  # (K, 3 + 3H)
        h = self.hidden
        g0 = p[:, 0] if self.learn_gamma_0 else self.gamma_0.expand(self.slots)
        span = F.softplus(p[:, 1])
        a = F.softplus(p[:, 2]) + 1e-4
        w = F.softplus(p[:, 3 : 3 + h])
        v = F.softplus(p[:, 3 + h : 3 + 2 * h])
        b = p[:, 3 + 2 * h :]
        return g0, span, a, w, v, b

    def _tilde(
        self, t: Tensor, a: Tensor, w: Tensor, v: Tensor, b: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Unnormalised value and derivative, ``t (...)`` -> ``(..., K)`` each."""
        x = t.unsqueeze(-1)  # (..., 1)
        value = a * x
        derivative = a.expand_as(value)
        if self.hidden:
            s = torch.sigmoid(v * (2.0 * x.unsqueeze(-1) - 1.0) + b)  # (..., K, H)
            value = value + (w * (2.0 * s - 1.0)).sum(-1) / self.hidden
            derivative = derivative + (w * 4.0 * v * s * (1.0 - s)).sum(-1) / self.hidden
        return value, derivative

    def gamma_and_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        r""":math:`\gamma_k(t)` and :math:`d\gamma_k/dt`, ``t (...)`` -> ``(..., K)`` each."""
        g0, span, a, w, v, b = self._slot_parameters()
        ends, _ = self._tilde(torch.tensor([0.0, 1.0], dtype=t.dtype, device=t.device), a, w, v, b)
        value, derivative = self._tilde(t, a, w, v, b)
        scale = span / (ends[1] - ends[0])
        return g0 + scale * (value - ends[0]), scale * derivative

    def gamma(self, t: Tensor) -> Tensor:
        r""":math:`\gamma_k(t)`, ``t (...)`` -> ``(..., K)``."""
        return self.gamma_and_derivative(t)[0]

    def per_slot(self, t: Tensor) -> Tensor:
        r""":math:`\gamma_k(t)` as ``(..., K, 1)``: broadcasts against latents ``(B, K, D)``."""
        return self.gamma(t).unsqueeze(-1)


def _inverse_softplus(y: float) -> float:
    return float(y + math.log(-math.expm1(-y)))


def _check_endpoints(gamma_min: float, gamma_max: float) -> None:
    if not gamma_min < gamma_max:
        raise ValueError(f"need gamma_min < gamma_max, got {gamma_min} and {gamma_max}")
