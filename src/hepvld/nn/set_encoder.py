"""Permutation-invariant transformer over a padded set of objects plus global features.

Shape legend (see ``docs/architecture.md``): ``B`` batch, ``N`` padded objects per
event, ``F`` features per object, ``G`` global features, ``D`` width.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hepvld.nn.layers import GatedBlock

__all__ = ["MaskedSelfAttention", "SetEncoder", "SetEncoderLayer"]


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention that ignores masked keys.

    Parameters
    ----------
    dim
        Width ``D`` (divisible by ``heads``).
    heads
        Number of attention heads.
    dropout
        Dropout on the attention weights (training only).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        """Attend.

        Parameters
        ----------
        x : (B, L, D)
            Tokens.
        key_mask : (B, L) bool
            True for tokens that may be attended to. Every row must hold at least one
            True (otherwise the softmax is undefined); :class:`SetEncoder` guarantees
            it with its always-present event token.

        Returns
        -------
        Tensor (B, L, D)
        """
        b, length, dim = x.shape
        q, k, v = (
            self.qkv(x).view(b, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        )
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=key_mask[:, None, None, :],
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(y.transpose(1, 2).reshape(b, length, dim))

    def forward_packed(self, x: Tensor, index: Tensor, key_mask: Tensor) -> Tensor:
        """Attend, with the tokens packed: only real tokens pass the projections.

        Parameters
        ----------
        x : (T, D)
            The real tokens of all events, row-major: ``x = padded.flatten(0, 1)[index]``.
        index : (T,) int64
            Their positions in the flattened ``(B * L)`` padded layout.
        key_mask : (B, L) bool
            True for real tokens (``key_mask.flatten().nonzero() == index``).

        Returns
        -------
        Tensor (T, D), the same values as :meth:`forward` on the padded layout at ``index``.
        """
        b, length = key_mask.shape
        dim = x.shape[-1]
        qkv = self.qkv(x)
        padded = qkv.new_zeros(b * length, 3 * dim).index_copy(0, index, qkv)
        q, k, v = padded.view(b, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=key_mask[:, None, None, :],
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(y.transpose(1, 2).reshape(b * length, dim).index_select(0, index))


class SetEncoderLayer(nn.Module):
    """Pre-LN transformer layer whose feed-forward part is a :class:`GatedBlock`.

    ``x <- x + Dropout(Attention(LayerNorm(x)))``, then ``x <- GatedBlock(x)`` (the GRU
    gate of the block is the skip connection of the feed-forward part).

    Parameters
    ----------
    dim, heads, expansion, dropout
        Width, attention heads, feed-forward expansion factor, dropout.
    """

    def __init__(self, dim: int, heads: int, expansion: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = MaskedSelfAttention(dim, heads, dropout)
        self.dropout = nn.Dropout(dropout)
        self.feed_forward = GatedBlock(dim, expansion, dropout)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        """Apply the layer.

        Parameters
        ----------
        x : (B, L, D)
        key_mask : (B, L) bool

        Returns
        -------
        Tensor (B, L, D)
        """
        x = x + self.dropout(self.attention(self.norm(x), key_mask))
        return self.feed_forward(x)

    def forward_packed(self, x: Tensor, index: Tensor, key_mask: Tensor) -> Tensor:
        """:meth:`forward` on packed real tokens ``x (T, D)``; see
        :meth:`MaskedSelfAttention.forward_packed`. Returns ``(T, D)``."""
        x = x + self.dropout(self.attention.forward_packed(self.norm(x), index, key_mask))
        return self.feed_forward(x)


class SetEncoder(nn.Module):
    """Transformer encoder of a detector event: a padded set of objects + global features.

    The token sequence is ``[event, global, object_1, ..., object_N]``: a learned event
    (CLS) token, one token embedding the global features (e.g. MET) and one token per
    object, each kind with its own embedding network and learned type vector. There is
    no positional encoding, so the event vector is invariant under permutations of the
    real objects. Padded objects are zeroed before embedding, are never attended to, and
    their output embeddings are zero, so whatever sits in padded slots changes nothing.
    The event token is always present, so events with zero real objects are well defined.

    Parameters
    ----------
    in_features
        Features per object ``F``.
    global_features
        Global features ``G``; 0 for none (then no global token and ``globals`` may be
        ``None``).
    dim
        Width ``D``.
    heads
        Attention heads (must divide ``dim``).
    layers
        Number of transformer layers.
    expansion
        Feed-forward expansion factor.
    dropout
        Dropout in attention and feed-forward parts.
    packed
        Compute only the real tokens (the default): the batch is trimmed to its last
        occupied slot, and the per-token layers (embeddings, projections, feed-forward
        blocks, norms) run on the ``T`` real tokens alone; only the attention itself sees
        the ``(B, L)`` padded layout. The same function as ``packed=False`` (the padded
        computation over all ``N`` slots) up to floating-point rounding, at a cost
        proportional to the real multiplicity (``benchmarks/bench_train.py``). Under
        ``torch.compile`` and ``torch.export`` the padded computation is traced instead
        (static shapes, one graph; the packed one has data-dependent sizes). May be
        switched per instance (``encoder.packed = False``); it holds no weights.
    """

    def __init__(
        self,
        in_features: int,
        global_features: int,
        dim: int,
        heads: int = 4,
        layers: int = 8,
        expansion: int = 2,
        dropout: float = 0.0,
        packed: bool = True,
    ) -> None:
        super().__init__()
        self.packed = packed
        self.in_features = in_features
        self.global_features = global_features
        self.object_embedding = nn.Sequential(
            nn.Linear(in_features, dim), nn.GELU(), nn.Linear(dim, dim)
        )
        self.global_embedding = (
            nn.Sequential(nn.Linear(global_features, dim), nn.GELU(), nn.Linear(dim, dim))
            if global_features > 0
            else None
        )
        self.event_token = nn.Parameter(0.02 * torch.randn(dim))
        self.object_type = nn.Parameter(0.02 * torch.randn(dim))
        self.global_type = nn.Parameter(0.02 * torch.randn(dim))
        self.layers = nn.ModuleList(
            SetEncoderLayer(dim, heads, expansion, dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        # The event vector reads the event token *and* the masked mean of the object (and
        # global) outputs: the event token alone starts out nearly constant across events
        # (its residual stream is dominated by learned constants), and a weak gradient, as
        # a denoiser's, then never teaches it to vary. Pooling carries every event's
        # inputs from the first step.
        n_read = 2 + (1 if global_features > 0 else 0)
        self.event_projection = nn.Linear(n_read * dim, dim)

    def forward(
        self, objects: Tensor, mask: Tensor, globals: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Encode a batch of events.

        Parameters
        ----------
        objects : (B, N, F)
            Object features; values in padded slots are ignored.
        mask : (B, N) bool
            True for real objects.
        globals : (B, G) or None
            Event-level features (``None`` only when ``global_features == 0``).

        Returns
        -------
        event : (B, D)
            Linear read-out of the event token, the masked mean of the object outputs
            and the global token.
        object_embeddings : (B, N, D)
            Per-object outputs, exactly zero in padded slots.
        """
        if self.packed and not (torch.compiler.is_compiling() or torch.compiler.is_exporting()):
            return self._forward_packed(objects, mask, globals)
        b = objects.shape[0]
        mask = mask.to(torch.bool)
        objects = objects.masked_fill(~mask.unsqueeze(-1), 0.0)
        tokens = [self.event_token.expand(b, 1, -1)]
        if self.global_embedding is not None:
            if globals is None:
                raise ValueError(f"SetEncoder expects globals of size {self.global_features}")
            tokens.append((self.global_embedding(globals) + self.global_type).unsqueeze(1))
        tokens.append(self.object_embedding(objects) + self.object_type)
        x = torch.cat(tokens, dim=1)
        n_special = len(tokens) - 1
        key_mask = torch.cat([mask.new_ones(b, n_special), mask], dim=1)
        for layer in self.layers:
            x = layer(x, key_mask)
        x = self.norm(x)
        object_embeddings = x[:, n_special:].masked_fill(~mask.unsqueeze(-1), 0.0)
        counts = mask.sum(1, keepdim=True).clamp_min(1).to(x.dtype)
        pooled = object_embeddings.sum(1) / counts
        event = self.event_projection(torch.cat([x[:, :n_special].flatten(1), pooled], dim=-1))
        return event, object_embeddings

    def _forward_packed(
        self, objects: Tensor, mask: Tensor, globals: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """:meth:`forward` computing the real tokens only (see ``packed``)."""
        b, n = mask.shape
        mask = mask.to(torch.bool)
        occupied = mask.any(0).nonzero()
        used = int(occupied[-1]) + 1 if len(occupied) else 0  # trim trailing empty slots
        mask_used = mask[:, :used]
        special = [self.event_token.expand(b, -1)]
        if self.global_embedding is not None:
            if globals is None:
                raise ValueError(f"SetEncoder expects globals of size {self.global_features}")
            special.append(self.global_embedding(globals) + self.global_type)
        n_special = len(special)
        length = n_special + used
        key_mask = torch.cat([mask.new_ones(b, n_special), mask_used], dim=1)
        index = key_mask.flatten().nonzero().squeeze(1)  # (T,), row-major
        # Real objects are embedded alone (padded values never enter an operation), then
        # the special and object tokens are placed in packed (row-major) order.
        obj_index = mask_used.flatten().nonzero().squeeze(1)
        real_objects = objects[:, :used].reshape(b * used, objects.shape[-1])[obj_index]
        obj_tokens = self.object_embedding(real_objects) + self.object_type
        tokens = torch.stack([t.to(obj_tokens.dtype) for t in special], dim=1)  # (B, S, D)
        dim = tokens.shape[-1]
        layout = torch.cat([tokens, tokens.new_zeros(b, used, dim)], dim=1).flatten(0, 1)
        if used:
            obj_pos = (obj_index // used) * length + n_special + obj_index % used
            layout = layout.index_copy(0, obj_pos, obj_tokens)
        x = layout.index_select(0, index)  # (T, D)
        for layer in self.layers:
            x = cast(SetEncoderLayer, layer).forward_packed(x, index, key_mask)
        x = self.norm(x)
        out = x.new_zeros(b * length, dim).index_copy(0, index, x).view(b, length, dim)
        object_embeddings = out[:, n_special:]
        counts = mask_used.sum(1, keepdim=True).clamp_min(1).to(x.dtype)
        pooled = object_embeddings.sum(1) / counts
        event = self.event_projection(torch.cat([out[:, :n_special].flatten(1), pooled], dim=-1))
        if used < n:
            object_embeddings = torch.cat(
                [object_embeddings, object_embeddings.new_zeros(b, n - used, dim)], dim=1
            )
        return event, object_embeddings
