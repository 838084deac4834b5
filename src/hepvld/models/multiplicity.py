r"""Multiplicity predictors: the distribution of the number of particle-level objects given
the detector condition, ``p(n | z_y)`` on ``n = 0 .. n_max``.

Two kinds, one interface (:class:`MultiplicityHead`):

* ``gamma`` (VL-VLD, Shmakov et al. 2024): :math:`N \sim \Gamma(k(y), \theta(y))`,
  rounded, :math:`\hat N = [N]`. The discrete probabilities are
  :math:`P(\hat N = n) = F(n + \tfrac12) - F(n - \tfrac12)` with :math:`F` the Gamma CDF
  (``torch.special.gammainc``), the mass above :math:`n_\max - \tfrac12` folded into
  :math:`n_\max`. torch has no gradient of the incomplete Gamma function with respect to
  its shape, so the head *trains* on the dequantised continuous density,
  :math:`-\log f_\Gamma(n + u)` with :math:`u \sim U(-\tfrac12, \tfrac12)` (an upper bound
  on :math:`-\log P(\hat N = n)`, by Jensen), and *evaluates* (:meth:`log_prob`) the exact
  discrete probability.
* ``categorical``: logits over ``0 .. n_max`` (exact NLL, trains on it).

Sampling is by inverse CDF of the discrete probabilities from one uniform per draw, so a
draw is a deterministic function of that uniform (reproducible per event).

Shapes: ``B`` events, ``C`` condition size, ``M = n_max + 1`` support points.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["KINDS", "MultiplicityHead", "MultiplicityKind"]

MultiplicityKind = Literal["gamma", "categorical"]
#: The implemented kinds.
KINDS: tuple[MultiplicityKind, ...] = ("gamma", "categorical")


class MultiplicityHead(nn.Module):
    """``p(n | z_y)`` for ``n = 0 .. n_max``.

    Parameters
    ----------
    condition_dim
        ``C``.
    n_max
        Largest multiplicity (the level's ``max_objects``).
    kind
        ``"gamma"`` or ``"categorical"``.
    hidden
        Width of the two-layer network on ``z_y``.
    """

    def __init__(
        self, condition_dim: int, n_max: int, kind: MultiplicityKind, hidden: int = 64
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown multiplicity kind {kind!r}; choose one of {KINDS}")
        self.kind = kind
        self.n_max = int(n_max)
        out = 2 if kind == "gamma" else self.n_max + 1
        last = nn.Linear(hidden, out)
        self.net = nn.Sequential(
            nn.LayerNorm(condition_dim), nn.Linear(condition_dim, hidden), nn.GELU(), last
        )
        if kind == "gamma":
            # start near k = 25, theta = 0.25 (mean 6.25, std 1.25: a typical tt̄ count)
            with torch.no_grad():
                last.weight.mul_(0.1)
                last.bias.copy_(torch.tensor([_inv_softplus(25.0), _inv_softplus(0.25)]))

    def gamma_parameters(self, z_y: Tensor) -> tuple[Tensor, Tensor]:
        """Shape ``k (B,)`` and scale ``theta (B,)`` (``gamma`` kind only)."""
        if self.kind != "gamma":
            raise ValueError("gamma_parameters needs a 'gamma' multiplicity head")
        raw = self.net(z_y).float()
        return F.softplus(raw[..., 0]) + 1e-3, F.softplus(raw[..., 1]) + 1e-3

    def log_pmf(self, z_y: Tensor) -> Tensor:
        """``log P(n | z_y)`` for every ``n = 0 .. n_max``: ``(B, M)`` (no gradient through
        the Gamma CDF's shape, see the module docstring)."""
        if self.kind == "categorical":
            return torch.log_softmax(self.net(z_y).float(), dim=-1)
        k, theta = self.gamma_parameters(z_y)
        # in float64: the tail probabilities are differences of CDF values close to 1
        k, theta = k.detach().double()[:, None], theta.double()[:, None]
        edges = torch.arange(self.n_max, device=z_y.device, dtype=torch.float64) + 0.5  # (M-1,)
        cdf = torch.special.gammainc(k, edges / theta)  # (B, M-1)
        tail = torch.special.gammaincc(k[:, :1], edges[-1:] / theta)  # P(N > n_max - 1/2)
        probs = torch.cat([cdf[:, :1], torch.diff(cdf, dim=-1), tail], dim=-1)  # (B, M)
        return probs.clamp_min(1e-300).log().float()

    def log_prob(self, z_y: Tensor, n: Tensor) -> Tensor:
        """Exact ``log P(n | z_y)`` of integer counts ``n (B,)`` (clamped to ``0 .. n_max``): ``(B,)``."""
        index = n.long().clamp(0, self.n_max)
        return self.log_pmf(z_y).gather(-1, index[:, None]).squeeze(-1)

    def nll(self, z_y: Tensor, n: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Training loss ``(B,)`` for counts ``n (B,)``: the exact NLL (categorical) or the
        dequantised Gamma NLL (draws one uniform per event from ``generator``)."""
        if self.kind == "categorical":
            return -self.log_prob(z_y, n)
        k, theta = self.gamma_parameters(z_y)
        u = torch.rand(n.shape, generator=generator, device=n.device, dtype=torch.float32)
        x = (n.float() + u - 0.5).clamp_min(1e-3)
        return -torch.distributions.Gamma(k, 1.0 / theta).log_prob(x)

    def sample(self, z_y: Tensor, u: Tensor) -> Tensor:
        """Counts ``(B,)`` int64 by inverse CDF of the discrete probabilities at uniforms ``u (B,)``."""
        cdf = self.log_pmf(z_y).exp().cumsum(-1)
        n = torch.searchsorted(cdf, u.float().clamp(0.0, 1.0)[:, None].to(cdf.dtype).contiguous())
        return n.squeeze(-1).clamp(0, self.n_max)


def _inv_softplus(y: float) -> float:
    return float(torch.log(torch.expm1(torch.tensor(y))))
