r"""The type composition of a variable-length draw: ``p(n_b, n_e, n_mu | n, z_y)`` and the
constrained assignment of types to the decoded slots.

VL-VLD draws the number of objects ``n`` from its multiplicity head
(:mod:`hepvld.models.multiplicity`). Typing each slot by the argmax of its own decoded type
logits leaves the *composition* of the draw (how many b-jets, light jets, electrons, muons)
to chance: nothing ties the slots together, although the detector sees the b-tags and the
lepton flavour. Here the composition is drawn as a whole, given ``n`` and the detector
condition, so that ``p(n, composition | y) = p(n | y) p(composition | n, y)`` (exact chain
rule; the ``n`` head is kept as it is):

* :class:`CompositionHead`: a categorical over ``(n_b, n_e, n_mu)`` with ``n_b = 0 .. n_max``
  and ``n_e, n_mu = 0 .. max_leptons`` (the rest light jets), the logits a network of
  ``[z_y, embedding(n)]``; compositions with ``n_b + n_e + n_mu > n`` have probability 0.
  An ``allowed`` table (``(n_max + 1, O)`` bool, e.g. the level's phase space,
  :meth:`hepvld.targets.particle.ParticleLevel.composition_support`) renormalises the
  distribution onto the allowed compositions at sampling; training uses the exact NLL of the
  true composition (counts above ``max_leptons`` clamped);
* :func:`assign_types`: given the composition and the decoded per-slot type logits, the
  slots' types — the ``n_e + n_mu`` most lepton-like real slots are the leptons (of them the
  ``n_e`` most electron-like the electrons), the ``n_b`` most b-like of the other real slots
  the b-jets, the rest light jets. Each step is a top-k of a log-odds (``log P(lepton) -
  log P(jet)``, ``log P(e) - log P(mu)``, ``log P(b) - log P(light)``), the exact maximum of
  the slots' summed log-probabilities under the count constraint for that binary split, so
  the assignment is the constrained argmax of a nested (lepton/jet, then flavour) reading
  of the per-slot probabilities, deterministic like the unconstrained argmax it replaces.

Shapes: ``B`` rows (events or draws), ``C`` condition size, ``K - 1 = n_max`` object slots,
``T = 4`` types, ``O = (n_max + 1) * L * L`` compositions with ``L = max_leptons + 1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CompositionHead", "assign_types", "inverse_cdf", "top_k_mask"]


def inverse_cdf(log_pmf: Tensor, u: Tensor) -> Tensor:
    """Index ``(B,)`` int64 drawn by inverse CDF from ``log_pmf (B, O)`` (rows may hold
    ``-inf``; each must have a finite entry) at uniforms ``u (B,)``.

    ``u`` is clamped to ``(0, 1]`` and scaled by each row's total, so the index always has
    positive probability (never a zero-probability entry at the edges)."""
    cdf = log_pmf.double().exp().cumsum(-1)
    u = u.double().clamp(1e-12, 1.0) * cdf[:, -1]
    index = torch.searchsorted(cdf, u[:, None].contiguous()).squeeze(-1)
    return index.clamp(0, log_pmf.shape[-1] - 1)


class CompositionHead(nn.Module):
    """``p(n_b, n_e, n_mu | n, z_y)`` (module docstring).

    Parameters
    ----------
    condition_dim
        ``C``.
    n_max
        Largest number of objects (the level's ``max_objects``).
    max_leptons
        Largest number of electrons (and of muons) a composition may have.
    hidden
        Width of the network.
    """

    feasible: Tensor  # (n_max + 1, O) bool: n_b + n_e + n_mu <= n

    def __init__(
        self, condition_dim: int, n_max: int, max_leptons: int = 2, hidden: int = 64
    ) -> None:
        super().__init__()
        self.n_max = int(n_max)
        self.max_leptons = int(max_leptons)
        side = self.max_leptons + 1
        self.n_outcomes = (self.n_max + 1) * side * side
        self.norm = nn.LayerNorm(condition_dim)
        self.condition_in = nn.Linear(condition_dim, hidden)
        self.count_in = nn.Embedding(self.n_max + 1, hidden)
        self.net = nn.Sequential(
            nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, self.n_outcomes)
        )
        nb, ne, nm = self.counts(torch.arange(self.n_outcomes)).unbind(-1)
        n = torch.arange(self.n_max + 1)
        feasible = (nb + ne + nm)[None, :] <= n[:, None]  # (n_max + 1, O)
        self.register_buffer("feasible", feasible, persistent=False)

    def counts(self, index: Tensor) -> Tensor:
        """``(..., 3)`` int64 ``(n_b, n_e, n_mu)`` of composition indices ``(...)``."""
        side = self.max_leptons + 1
        index = index.long()
        return torch.stack([index // (side * side), (index // side) % side, index % side], -1)

    def index(self, counts: Tensor) -> Tensor:
        """Composition indices ``(...)`` of counts ``(..., 3)`` ``(n_b, n_e, n_mu)`` (clamped
        to ``0 .. n_max`` and ``0 .. max_leptons``)."""
        side = self.max_leptons + 1
        nb = counts[..., 0].long().clamp(0, self.n_max)
        ne = counts[..., 1].long().clamp(0, self.max_leptons)
        nm = counts[..., 2].long().clamp(0, self.max_leptons)
        return (nb * side + ne) * side + nm

    def log_pmf(self, z_y: Tensor, n: Tensor, allowed: Tensor | None = None) -> Tensor:
        """``log p(composition | n, z_y)`` ``(B, O)`` for counts ``n (B,)`` (``-inf`` where
        infeasible; with ``allowed (n_max + 1, O)`` bool renormalised onto the allowed
        compositions of each ``n``, which must have at least one)."""
        n = n.long().clamp(0, self.n_max)
        h = self.condition_in(self.norm(z_y)) + self.count_in(n)
        keep = self.feasible[n] if allowed is None else self.feasible[n] & allowed[n]
        logits = self.net(h).float().masked_fill(~keep, float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def nll(self, z_y: Tensor, n: Tensor, counts: Tensor) -> Tensor:
        """Training loss ``(B,)``: ``-log p(counts | n, z_y)`` of the true counts ``(B, 3)``
        (no ``allowed`` table: the true composition is always feasible)."""
        target = self.index(counts)
        return -self.log_pmf(z_y, n).gather(-1, target[:, None]).squeeze(-1)

    def sample(self, z_y: Tensor, n: Tensor, u: Tensor, allowed: Tensor | None = None) -> Tensor:
        """Counts ``(B, 3)`` int64 ``(n_b, n_e, n_mu)`` by inverse CDF at uniforms ``u (B,)``."""
        return self.counts(inverse_cdf(self.log_pmf(z_y, n, allowed), u))


def top_k_mask(score: Tensor, eligible: Tensor, k: Tensor) -> Tensor:
    """``(B, S)`` bool: the ``k (B,)`` highest-``score (B, S)`` entries among ``eligible
    (B, S)`` (ties: the lower index first). ``k`` must not exceed the eligible count."""
    s = score.masked_fill(~eligible, float("-inf"))
    order = torch.argsort(s, dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(
        -1, order, torch.arange(s.shape[-1], device=s.device).expand_as(order).contiguous()
    )
    return eligible & (rank < k[:, None])


def assign_types(logits: Tensor, mask: Tensor, counts: Tensor) -> Tensor:
    """Types ``(B, S)`` int64 (index into ``(bjet, light_jet, electron, muon)``) of the slots
    of decoded type ``logits (B, S, 4)`` with real-slot ``mask (B, S)``, so that each row
    has exactly ``counts (B, 3)`` ``(n_b, n_e, n_mu)`` b-jets, electrons, muons among its
    real slots (the rest light jets; module docstring). Padded slots get type 1."""
    logp = F.log_softmax(logits.float(), dim=-1)
    counts = counts.long()
    n_b, n_e, n_mu = counts.unbind(-1)
    lepton_odds = torch.logsumexp(logp[..., 2:], -1) - torch.logsumexp(logp[..., :2], -1)
    is_lepton = top_k_mask(lepton_odds, mask, n_e + n_mu)
    is_electron = top_k_mask(logp[..., 2] - logp[..., 3], is_lepton, n_e)
    is_b = top_k_mask(logp[..., 0] - logp[..., 1], mask & ~is_lepton, n_b)
    lepton_type = torch.where(is_electron, 2, 3)
    jet_type = torch.where(is_b, 0, 1)
    return torch.where(is_lepton, lepton_type, jet_type)
