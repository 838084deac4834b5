"""A tiny model implementing the hepvld loss contract, for the training tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ToyRegressor(nn.Module):
    """MLP regression ``globals (B,G) -> targets (B,X)`` with input noise and dropout.

    The noise is drawn from the generator the trainer passes, dropout from torch's global
    RNG, so both RNG restorations are exercised on resume. ``fail_at`` raises on that
    (1-based) training call to simulate a killed run.
    """

    def __init__(
        self,
        g: int = 3,
        x: int = 2,
        hidden: int = 16,
        fail_at: int | None = None,
        noise: float = 0.05,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(g, hidden), nn.GELU(), nn.Dropout(0.1), nn.Linear(hidden, x)
        )
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.fail_at = fail_at
        self.noise = noise

    def loss(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        if self.training:
            self.calls += 1
            if self.fail_at is not None and int(self.calls) == self.fail_at:
                raise RuntimeError("simulated crash")
        x = batch["globals"]
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        per_event = (self.net(x + self.noise * noise) - batch["targets"]).pow(2).mean(-1)
        w = batch["weights"]
        mse = (w * per_event).sum() / w.sum()
        l1 = (w * self.net[0].weight.abs().mean()).sum() / w.sum()
        return {"loss": mse + 1e-3 * l1, "mse": mse, "l1": l1}


def toy_data(n: int, seed: int = 0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(n, 3, generator=gen)
    targets = torch.stack([g[:, 0] * g[:, 1], g[:, 2].sin()], -1)
    weights = torch.rand(n, generator=gen) + 0.5
    return {"globals": g, "targets": targets, "weights": weights}


def toy_model(seed: int = 0, **kwargs) -> ToyRegressor:
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # tests only: deterministic initial weights
        return ToyRegressor(**kwargs)
