"""Toy inputs shared by the evaluation tests (imported by name; not a conftest)."""

from __future__ import annotations

import numpy as np


def physical_toy(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 55) roughly physical targets: positive masses, log E consistent with |p|."""
    x = rng.normal(size=(n, 11, 5)) * 40.0
    x[..., 0] = np.abs(x[..., 0]) + 5.0
    p2 = (x[..., 2:] ** 2).sum(axis=-1)
    x[..., 1] = 0.5 * np.log(x[..., 0] ** 2 + p2)
    return x.reshape(n, 55)
