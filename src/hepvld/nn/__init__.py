"""Shared layers: the GRU-gated feed-forward block, a masked set transformer, a slot
transformer with cross-attention, time embedding."""

from __future__ import annotations

from hepvld.nn.layers import GatedBlock, GatedMLP, SinusoidalEmbedding
from hepvld.nn.set_encoder import MaskedSelfAttention, SetEncoder, SetEncoderLayer
from hepvld.nn.slot_transformer import CrossAttention, SlotTransformer, SlotTransformerLayer

__all__ = [
    "CrossAttention",
    "GatedBlock",
    "GatedMLP",
    "MaskedSelfAttention",
    "SetEncoder",
    "SetEncoderLayer",
    "SinusoidalEmbedding",
    "SlotTransformer",
    "SlotTransformerLayer",
]
