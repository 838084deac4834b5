"""SetEncoder: masks that really ignore padding, permutation invariance, empty events."""

from __future__ import annotations

import pytest
import torch

from hepvld.nn import SetEncoder

B, N, F, G, D = 5, 7, 6, 2, 16


def _encoder(dropout: float = 0.0, global_features: int = G) -> SetEncoder:
    torch.manual_seed(0)
    return SetEncoder(
        F, global_features, dim=D, heads=4, layers=2, expansion=2, dropout=dropout
    ).eval()


def _inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    objects = torch.randn(B, N, F, generator=g)
    counts = torch.tensor([0, 1, 3, 7, 4])  # row 0: no real object at all
    mask = torch.arange(N)[None, :] < counts[:, None]
    globals_ = torch.randn(B, G, generator=g)
    return objects, mask, globals_


def test_shapes_and_empty_event() -> None:
    encoder = _encoder()
    objects, mask, globals_ = _inputs()
    event, obj = encoder(objects, mask, globals_)
    assert event.shape == (B, D) and obj.shape == (B, N, D)
    assert torch.isfinite(event).all() and torch.isfinite(obj).all()
    assert torch.all(obj[~mask] == 0)


@pytest.mark.parametrize("garbage", [1e30, float("inf"), float("nan")])
def test_padding_is_ignored_exactly(garbage: float) -> None:
    encoder = _encoder()
    objects, mask, globals_ = _inputs()
    dirty = objects.clone()
    dirty[~mask] = garbage * torch.randn(int((~mask).sum()), F).sign()
    clean = objects.masked_fill(~mask[..., None], 0.0)
    out_clean = encoder(clean, mask, globals_)
    out_dirty = encoder(dirty, mask, globals_)
    assert torch.equal(out_clean[0], out_dirty[0])
    assert torch.equal(out_clean[1], out_dirty[1])


def test_extra_padding_columns_change_nothing() -> None:
    encoder = _encoder()
    objects, mask, globals_ = _inputs()
    wide_objects = torch.cat([objects, 1e6 * torch.randn(B, 3, F)], dim=1)
    wide_mask = torch.cat([mask, torch.zeros(B, 3, dtype=torch.bool)], dim=1)
    event, obj = encoder(objects, mask, globals_)
    wide_event, wide_obj = encoder(wide_objects, wide_mask, globals_)
    torch.testing.assert_close(wide_event, event, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(wide_obj[:, :N], obj, atol=1e-5, rtol=1e-5)
    assert torch.all(wide_obj[:, N:] == 0)


def test_permutation_of_real_objects() -> None:
    encoder = _encoder()
    objects, mask, globals_ = _inputs()
    row = 3  # all 7 objects real
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(2))
    permuted = objects.clone()
    permuted[row] = objects[row, perm]
    event, obj = encoder(objects, mask, globals_)
    p_event, p_obj = encoder(permuted, mask, globals_)
    torch.testing.assert_close(p_event, event, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(p_obj[row], obj[row, perm], atol=1e-5, rtol=1e-5)


def test_globals_are_used_and_rows_independent() -> None:
    encoder = _encoder()
    objects, mask, globals_ = _inputs()
    event, _ = encoder(objects, mask, globals_)
    other = globals_.clone()
    other[2] += 1.0
    event2, _ = encoder(objects, mask, other)
    assert not torch.allclose(event2[2], event[2])
    torch.testing.assert_close(event2[[0, 1, 3, 4]], event[[0, 1, 3, 4]])


def test_no_globals() -> None:
    encoder = _encoder(global_features=0)
    objects, mask, _ = _inputs()
    event, _ = encoder(objects, mask, None)
    assert torch.isfinite(event).all()


def test_training_mode_gradients_and_empty_rows() -> None:
    encoder = _encoder(dropout=0.1).train()
    objects, mask, globals_ = _inputs()
    mask[1] = False
    event, obj = encoder(objects, mask, globals_)
    assert torch.isfinite(event).all()
    (event.square().sum() + obj.square().sum()).backward()
    for name, p in encoder.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_heads_must_divide_dim() -> None:
    with pytest.raises(ValueError, match="divisible"):
        SetEncoder(F, G, dim=10, heads=4, layers=1)


@pytest.mark.parametrize("all_empty", [False, True])
def test_packed_equals_padded_computation(all_empty: bool) -> None:
    encoder = _encoder(global_features=G)
    encoder.train()  # dropout 0: deterministic
    objects, mask, globals_ = _inputs()
    if all_empty:
        mask = torch.zeros_like(mask)
    outputs, grads = [], []
    for packed in (True, False):
        encoder.packed = packed
        encoder.zero_grad()
        event, obj = encoder(objects, mask, globals_)
        (event.square().sum() + obj.sum()).backward()
        outputs.append((event, obj))
        # a parameter that no real token reached has no gradient (None) or a zero one
        grads.append(
            {
                k: torch.zeros_like(p) if p.grad is None else p.grad.clone()
                for k, p in encoder.named_parameters()
            }
        )
    (event_p, obj_p), (event_d, obj_d) = outputs
    assert obj_p.shape == obj_d.shape == (B, N, D)
    torch.testing.assert_close(event_p, event_d, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(obj_p, obj_d, atol=1e-5, rtol=1e-5)
    for key, grad in grads[1].items():
        torch.testing.assert_close(grads[0][key], grad, atol=1e-5, rtol=1e-4, msg=key)
