"""Fake ``particle``-level values in the level's layout, for tests and small demos.

:func:`fake_particle_values` draws physical values ``(B, [S,] K, H)`` with a mask: an event
slot (MET, sin/cos φ, a massless neutrino), then ``n`` objects per row (at least 2 b-jets,
2 light jets and one lepton when ``min_objects >= 5``), features ``(px, py, pz, log(E+1),
log(M+1), one-hot type)``, ordered by decreasing pT, padded slots 0.
:class:`FakeParticleNet` is a stand-in network following the model contract that returns
such values (deterministic per event), so the usage side (``hepvld.unfold``, writers,
processor, evaluation) can be tested without training. Nothing in the library uses them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from hepvld.models.base import Draws
from hepvld.targets import get_level

__all__ = ["FakeParticleNet", "fake_particle_values"]


def fake_particle_values(
    rng: np.random.Generator,
    lead: tuple[int, ...],
    max_objects: int = 16,
    *,
    min_objects: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Random physical ``values (*lead, 1 + max_objects, 9)`` and ``mask (*lead, K)``.

    Rows have ``n ~ min_objects + Poisson(1.5)`` objects (at most ``max_objects``): types
    b, b, light, light, lepton (e or μ) for the first five, light jets after; pT ~ 25 +
    Exp(40) GeV, |η| < 2.5, jet masses 2–20 GeV, leptons massless.
    """
    k = 1 + max_objects
    shape = (*lead, k, 9)
    values = np.zeros(shape)
    mask = np.zeros(shape[:-1], dtype=bool)
    n_rows = int(np.prod(lead))
    v = values.reshape(n_rows, k, 9)
    m = mask.reshape(n_rows, k)
    n = np.minimum(min_objects + rng.poisson(1.5, size=n_rows), max_objects)
    for i in range(n_rows):
        ni = int(n[i])
        pt = np.sort(25.0 + rng.exponential(40.0, size=ni))[::-1]
        eta = rng.uniform(-2.5, 2.5, size=ni)
        phi = rng.uniform(-np.pi, np.pi, size=ni)
        types = np.ones(ni, dtype=int)
        base = [0, 0, 1, 1, 2 + int(rng.integers(2))][:ni]
        types[: len(base)] = base
        types = rng.permutation(types)
        mass = np.where(types < 2, rng.uniform(2.0, 20.0, size=ni), 0.0)
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
        v[i, 1 : 1 + ni, 0:5] = np.stack([px, py, pz, np.log1p(e), np.log1p(mass)], axis=-1)
        v[i, 1 + np.arange(ni), 5 + types] = 1.0
        m[i, : 1 + ni] = True
        met, met_phi = 20.0 + rng.exponential(40.0), rng.uniform(-np.pi, np.pi)
        nu = np.array([met * np.cos(met_phi), met * np.sin(met_phi), rng.normal(0, 80.0)])
        v[i, 0, :7] = [met, np.sin(met_phi), np.cos(met_phi), *nu, np.linalg.norm(nu)]
    return values, mask


class FakeParticleNet(nn.Module):
    """Stand-in particle-level network: ``unfold(...)`` returns
    :func:`fake_particle_values` seeded by each event's noise (so draws depend only on
    ``(seed, event number)``, like a real model's), ``3..6`` minimum objects per event.
    """

    def __init__(self, max_objects: int = 10) -> None:
        super().__init__()
        self.max_objects = int(max_objects)
        self.level = get_level("particle", {"max_objects": self.max_objects})
        self.target_shape = self.level.shape
        self.noise_shape = (4,)
        self.weight = nn.Parameter(torch.zeros(1))

    def unfold(
        self, objects: Any, mask: Any, globals: Any, *, n_samples: int, noise: Any, **_: Any
    ) -> Any:
        """Draws ``(B, S, K, 9)`` in physical units (see the class docstring)."""
        values, masks = [], []
        for row in noise:
            rng = np.random.default_rng(int(abs(float(row[0, 0])) * 1e6))
            v, m = fake_particle_values(
                rng, (n_samples,), self.max_objects, min_objects=int(rng.integers(3, 7))
            )
            values.append(v)
            masks.append(m)
        shape = (0, n_samples, *self.target_shape)
        v = np.stack(values) if values else np.zeros(shape)
        m = np.stack(masks) if masks else np.zeros(shape[:-1], bool)
        return Draws(torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(m))
