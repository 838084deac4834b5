"""GatedBlock, GatedMLP, SinusoidalEmbedding."""

from __future__ import annotations

import pytest
import torch

from hepvld.nn import GatedBlock, GatedMLP, SinusoidalEmbedding


@pytest.mark.parametrize("shape", [(5, 16), (3, 7, 16), (2, 3, 4, 16)])
def test_gated_block_shapes_and_gradients(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    block = GatedBlock(16, expansion=2, dropout=0.1)
    x = torch.randn(shape)
    y = block(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_gated_block_is_gru_skip() -> None:
    torch.manual_seed(0)
    block = GatedBlock(8).eval()
    x = torch.randn(4, 8)
    h = block.linear2(block.activation(block.linear1(block.norm(x))))
    torch.testing.assert_close(block(x), block.gate(h, x))


def test_gated_block_flattening_matches_rows() -> None:
    torch.manual_seed(0)
    block = GatedBlock(8).eval()
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(block(x), torch.stack([block(row) for row in x]))


def test_gated_mlp() -> None:
    torch.manual_seed(0)
    net = GatedMLP(in_dim=7, out_dim=3, dim=16, n_blocks=2, expansion=2)
    x = torch.randn(4, 5, 7)
    y = net(x)
    assert y.shape == (4, 5, 3)
    y.sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_sinusoidal_embedding() -> None:
    emb = SinusoidalEmbedding(32)
    t = torch.tensor([0.0, 1e-3, 0.5, 1.0])
    e = emb(t)
    assert e.shape == (4, 32) and e.dtype == torch.float32
    assert torch.all(e.abs() <= 1.0)
    # distinct times -> distinct codes, even for close-by times
    assert torch.cdist(e, e).fill_diagonal_(1.0).min() > 0.1
    assert emb(t.double()).dtype == torch.float64
    assert emb(torch.rand(2, 3)).shape == (2, 3, 32)
    with pytest.raises(ValueError, match="even"):
        SinusoidalEmbedding(31)
