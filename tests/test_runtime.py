"""Device-dependent defaults of hepvld.runtime."""

from __future__ import annotations

import os

import pytest
import torch

from hepvld.runtime import CPU_ROWS, auto_batch_size, recommended_threads


def test_cpu_batch_size_targets_rows_per_call() -> None:
    model = torch.nn.Linear(2, 2)
    assert auto_batch_size(1, model=model) == CPU_ROWS
    assert auto_batch_size(100, model=model) == CPU_ROWS // 100
    assert auto_batch_size(10 * CPU_ROWS, device="cpu") == 1  # at least one event
    with pytest.raises(ValueError, match="n_samples"):
        auto_batch_size(0)


def test_recommended_threads_are_the_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert recommended_threads() == 3
