"""Transformer over a padded set of slots that may also cross-attend to a context set.

Used by VL-VLD (:mod:`hepvld.models.vlvld`) for its set VAE and its denoiser: the slots are
the particle-level event slot and objects, the context the detector tokens.

Shape legend (see ``docs/architecture.md``): ``B`` batch, ``K`` slots, ``L`` context
tokens, ``D`` width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hepvld.nn.layers import GatedBlock
from hepvld.nn.set_encoder import MaskedSelfAttention

__all__ = ["CrossAttention", "SlotTransformer", "SlotTransformerLayer"]


class CrossAttention(nn.Module):
    """Multi-head attention of queries ``x`` to a masked context set.

    Parameters
    ----------
    dim
        Width ``D`` of queries and context (divisible by ``heads``).
    heads
        Attention heads.
    dropout
        Dropout on the attention weights (training only).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        """Attend.

        Parameters
        ----------
        x : (B, K, D)
            Queries.
        context : (B, L, D)
            Keys/values.
        context_mask : (B, L) bool
            True for context tokens that may be attended to (at least one per row).

        Returns
        -------
        Tensor (B, K, D)
        """
        b, k, dim = x.shape
        length = context.shape[1]
        h = self.heads
        q = self.q(x).view(b, k, h, dim // h).transpose(1, 2)
        key, value = self.kv(context).view(b, length, 2, h, dim // h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q,
            key,
            value,
            attn_mask=context_mask[:, None, None, :],
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(y.transpose(1, 2).reshape(b, k, dim))


class SlotTransformerLayer(nn.Module):
    """Pre-LN layer: masked self-attention over slots, optional cross-attention to a
    context, then a :class:`~hepvld.nn.GatedBlock` feed-forward part.

    Parameters
    ----------
    dim, heads, expansion, dropout
        Width, heads, feed-forward expansion, dropout.
    cross
        Include the cross-attention sub-layer.
    """

    def __init__(
        self, dim: int, heads: int, expansion: int = 2, dropout: float = 0.0, cross: bool = False
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = MaskedSelfAttention(dim, heads, dropout)
        self.cross_norm = nn.LayerNorm(dim) if cross else None
        self.cross = CrossAttention(dim, heads, dropout) if cross else None
        self.dropout = nn.Dropout(dropout)
        self.feed_forward = GatedBlock(dim, expansion, dropout)

    def forward(
        self,
        x: Tensor,
        mask: Tensor,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """``x (B, K, D)``, slot ``mask (B, K)`` (True: may be attended to), context
        ``(B, L, D)`` with ``context_mask (B, L)`` (needed when the layer has cross-attention).
        Returns ``(B, K, D)``."""
        x = x + self.dropout(self.attention(self.norm(x), mask))
        if self.cross is not None and self.cross_norm is not None:
            if context is None or context_mask is None:
                raise ValueError("a cross-attention layer needs context and context_mask")
            x = x + self.dropout(self.cross(self.cross_norm(x), context, context_mask))
        return self.feed_forward(x)


class SlotTransformer(nn.Module):
    """A stack of :class:`SlotTransformerLayer` and a final LayerNorm.

    Padded slots (``mask`` False) are never attended to, so the outputs of real slots do
    not depend on what padded slots hold; padded outputs are whatever the layers give
    (callers mask them).

    Parameters
    ----------
    dim, heads, layers, expansion, dropout
        Width, heads, number of layers, feed-forward expansion, dropout.
    cross
        Every layer also cross-attends to the context.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        layers: int,
        expansion: int = 2,
        dropout: float = 0.0,
        cross: bool = False,
    ) -> None:
        super().__init__()
        self.cross = cross
        self.layers = nn.ModuleList(
            SlotTransformerLayer(dim, heads, expansion, dropout, cross) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self,
        x: Tensor,
        mask: Tensor,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """``x (B, K, D)``, ``mask (B, K)`` bool, optional ``context (B, L, D)`` and
        ``context_mask (B, L)``; returns ``(B, K, D)``."""
        mask = mask.to(torch.bool)
        for layer in self.layers:
            x = layer(x, mask, context, context_mask)
        return self.norm(x)
