"""Shared layers: the GRU-gated feed-forward block, a masked set transformer, time embedding."""

from __future__ import annotations

from hepvld.nn.layers import GatedBlock, GatedMLP, SinusoidalEmbedding
from hepvld.nn.set_encoder import MaskedSelfAttention, SetEncoder, SetEncoderLayer

__all__ = [
    "GatedBlock",
    "GatedMLP",
    "MaskedSelfAttention",
    "SetEncoder",
    "SetEncoderLayer",
    "SinusoidalEmbedding",
]
