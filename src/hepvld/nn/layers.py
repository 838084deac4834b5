"""Feed-forward building blocks: the GRU-gated block, a stack of them, a time embedding.

Shape legend (see ``docs/architecture.md``): ``B`` batch, ``D`` width; ``...`` any
leading dimensions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["GatedBlock", "GatedMLP", "SinusoidalEmbedding"]


class GatedBlock(nn.Module):
    r"""Feed-forward block with a GRU cell as its skip connection (VLD, Appendix A).

    .. math:: y = \mathrm{GRUCell}\big(\mathrm{input}=f(x),\ \mathrm{hidden}=x\big),
       \quad f(x) = W_2\,\mathrm{GELU}(W_1\,\mathrm{LayerNorm}(x))

    with :math:`W_1: D \to kD` and :math:`W_2: kD \to D`.

    Parameters
    ----------
    dim
        Width ``D``.
    expansion
        Hidden-width factor ``k``.
    dropout
        Dropout on the hidden activation of ``f``.
    """

    def __init__(self, dim: int, expansion: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, expansion * dim)
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(expansion * dim, dim)
        self.gate = nn.GRUCell(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Parameters
        ----------
        x : (..., D)

        Returns
        -------
        Tensor (..., D)
        """
        h = self.linear2(self.dropout(self.activation(self.linear1(self.norm(x)))))
        shape = x.shape
        out = self.gate(h.reshape(-1, self.dim), x.reshape(-1, self.dim))
        return out.reshape(shape)


class GatedMLP(nn.Module):
    """Input projection, ``n_blocks`` :class:`GatedBlock`, final LayerNorm, output projection.

    Used for the VAE encoder / decoder and the denoiser.

    Parameters
    ----------
    in_dim, out_dim
        Input and output sizes.
    dim
        Hidden width ``D``.
    n_blocks
        Number of gated blocks.
    expansion
        Hidden-width factor of each block.
    dropout
        Dropout inside each block.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        dim: int,
        n_blocks: int,
        expansion: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input = nn.Linear(in_dim, dim)
        self.blocks = nn.ModuleList(GatedBlock(dim, expansion, dropout) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(dim)
        self.output = nn.Linear(dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the network.

        Parameters
        ----------
        x : (..., in_dim)

        Returns
        -------
        Tensor (..., out_dim)
        """
        h = self.input(x)
        for block in self.blocks:
            h = block(h)
        return self.output(self.norm(h))


class SinusoidalEmbedding(nn.Module):
    r"""Transformer-style sinusoidal encoding of a diffusion time :math:`t \in [0, 1]`.

    .. math:: e(t) = [\sin(s t \omega_j), \cos(s t \omega_j)]_{j < \mathrm{dim}/2},
       \quad \omega_j = P^{-j / (\mathrm{dim}/2)}

    with ``s = scale`` (1000, so that ``s t`` spans the same range as discrete DDPM
    step indices) and ``P = max_period``.

    Parameters
    ----------
    dim
        Embedding size (even).
    scale
        Multiplier applied to ``t`` before encoding.
    max_period
        Longest period ``P`` of the encoding.
    """

    frequencies: Tensor

    def __init__(self, dim: int = 32, scale: float = 1000.0, max_period: float = 10000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"SinusoidalEmbedding dim must be even, got {dim}")
        self.dim = dim
        self.scale = scale
        half = dim // 2
        frequencies = torch.exp(
            -math.log(max_period) * torch.arange(half, dtype=torch.float32) / half
        )
        self.register_buffer("frequencies", frequencies, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        """Encode times.

        Parameters
        ----------
        t : (...,)
            Times in ``[0, 1]``.

        Returns
        -------
        Tensor (..., dim), dtype of ``t`` (float32 if ``t`` is not floating point).
        """
        dtype = t.dtype if t.is_floating_point() else torch.float32
        angles = (self.scale * t.to(dtype)).unsqueeze(-1) * self.frequencies.to(dtype)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)
