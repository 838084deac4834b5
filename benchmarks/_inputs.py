"""Shared inputs of the speed benchmarks: a model of a preset and batches of real shapes.

``detector_batch`` takes the detector multiplicities (which objects are real) from a
ROOT file when given one (e.g. a Pythia sample of ``python -m hepvld.generate``), else
from the synthetic tt̄ events of :func:`hepvld.testing.synthetic.toy_events` after the paper
selection (lepton + 4-7 jets); object features, globals and targets are standard-normal
noise, which costs the same as real values.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from hepvld.models import build_model, model_config
from hepvld.physics import TARGET_DIM

OBJECT_FEATURES, GLOBAL_FEATURES, N_SLOTS = 12, 2, 21


def build(preset: str, model: str = "vld", device: str | torch.device = "cpu") -> torch.nn.Module:
    """A freshly initialised model of ``preset`` for the detector and parton shapes."""
    torch.manual_seed(0)
    return build_model(
        model,
        model_config(preset),
        object_features=OBJECT_FEATURES,
        global_features=GLOBAL_FEATURES,
        target_shift=torch.zeros(TARGET_DIM),
        target_scale=torch.ones(TARGET_DIM) * 50,
    ).to(device)


@functools.lru_cache(maxsize=4)
def multiplicity_masks(file: str | None = None) -> np.ndarray:
    """``(E, 21)`` bool masks of real detector objects of selected events."""
    if file is not None:
        from hepvld.data import load_tensors

        return np.asarray(load_tensors(Path(file)).mask, dtype=bool)
    from hepvld.features import detector_tensors, select
    from hepvld.testing.synthetic import toy_events

    events = toy_events(8000, seed=0)
    keep, _ = select(events)
    return detector_tensors(events[keep]).mask


def detector_batch(
    size: int, *, seed: int = 0, file: str | None = None, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """A training batch ``objects (B, 21, 12)``, ``mask``, ``globals``, ``targets``, ``weights``.

    Padded slots hold noise too (the models must ignore them).
    """
    gen = torch.Generator().manual_seed(seed)
    masks = torch.from_numpy(multiplicity_masks(file))
    rows = torch.randint(len(masks), (size,), generator=gen)
    batch = {
        "objects": torch.randn(size, N_SLOTS, OBJECT_FEATURES, generator=gen),
        "mask": masks[rows].clone(),
        "globals": torch.randn(size, GLOBAL_FEATURES, generator=gen),
        "targets": torch.randn(size, TARGET_DIM, generator=gen).unflatten(-1, (11, 5)),
        "weights": torch.ones(size),
    }
    return {k: v.to(device) for k, v in batch.items()}


def gemm_rate(m: int, k: int, n: int, *, seconds: float = 0.5, dtype=torch.float32) -> float:
    """Measured ``torch.mm`` rate in GFLOP/s of ``(m, k) @ (k, n)`` at the current threads."""
    import time

    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    torch.mm(a, b)
    reps, elapsed = 0, 0.0
    t0 = time.perf_counter()
    while elapsed < seconds or reps < 3:
        torch.mm(a, b)
        reps += 1
        elapsed = time.perf_counter() - t0
    return 2.0 * m * k * n * reps / elapsed / 1e9
