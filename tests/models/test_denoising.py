"""The diffusion component's sampling shortcut: a shared time gives the same ε."""

from __future__ import annotations

import torch

from hepvld.models import build_model, model_config


def test_shared_time_matches_per_row_evaluation() -> None:
    torch.manual_seed(0)
    model = build_model("vld", model_config("tiny"), object_features=12, global_features=2)
    diffusion = model.diffusion
    g = torch.Generator().manual_seed(1)
    z_t = torch.randn(7, *model.noise_shape, generator=g)
    z_y = torch.randn(7, model.condition_dim, generator=g)
    for value in (0.0, 0.37, 1.0):
        t = torch.full((7,), value)
        with torch.no_grad():
            shared = diffusion.eps(z_t, t, z_y, shared_time=True)
            per_row = diffusion.eps(z_t, t, z_y)
        torch.testing.assert_close(shared, per_row, rtol=1e-6, atol=1e-6)
    # a batch of different times must not take the shortcut: per-row results differ
    t = torch.linspace(0.0, 1.0, 7)
    with torch.no_grad():
        assert not torch.allclose(
            diffusion.eps(z_t, t, z_y), diffusion.eps(z_t, t, z_y, shared_time=True)
        )
