"""Device-dependent defaults: how many events per network call, how many CPU threads.

``hepvld.unfold`` uses :func:`auto_batch_size` when no ``batch_size`` is given. Library
code never changes torch's thread count; :func:`recommended_threads` is what the command
line tools and benchmarks pass to ``torch.set_num_threads``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["auto_batch_size", "recommended_threads", "release_free_memory"]

#: Draws per ε-network call on CPU: the activations of one call (rows x width x 4 bytes,
#: a few MB for the paper's width 96) stay in the caches; larger calls gain nothing
#: (``benchmarks/bench_unfold_overhead.py``) and only cost memory.
CPU_ROWS = 8192
#: Upper bound of draws per call on GPU (beyond this the GPU is saturated).
GPU_MAX_ROWS = 1 << 20


def _width(model: Any) -> int:
    config = getattr(model, "config", None)
    return int(getattr(config, "dim", 96) * max(1, getattr(config, "expansion", 2)))


def auto_batch_size(
    n_samples: int, *, model: Any = None, device: torch.device | str | None = None
) -> int:
    """Events per network call when drawing ``n_samples`` per event.

    A call holds ``events x n_samples`` rows. On CPU it aims at :data:`CPU_ROWS` rows;
    on CUDA at as many rows as fit in a quarter of the free memory, counting
    ``64 x width x 4`` bytes per row (activations of the denoiser's blocks, solver
    history and the condition; ``width = dim x expansion`` of ``model``'s config, 192 if
    unknown), at most :data:`GPU_MAX_ROWS`. At least one event.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if device is None:
        try:
            device = next(model.parameters()).device
        except (AttributeError, StopIteration):
            device = "cpu"
    device = torch.device(device)
    rows = CPU_ROWS
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        rows = min(GPU_MAX_ROWS, int(free / 4 / (64 * _width(model) * 4)))
    return max(1, rows // n_samples)


def recommended_threads() -> int:
    """CPU threads for torch: the cores this process may run on (``sched_getaffinity``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def release_free_memory() -> bool:
    """Return freed heap memory to the operating system (glibc ``malloc_trim(0)``).

    A long streaming job (``hepvld unfold`` chunk after chunk) frees the arrays of each
    chunk, but glibc keeps the fragmented pages: the resident size grew by ~0.7 kB per
    event (``benchmarks/bench_unfold_rss.py``) although nothing leaked. Called after each
    chunk it keeps the resident size flat; it costs a few milliseconds. A no-op (returning
    ``False``) where glibc is not the allocator.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    return bool(trim(0))
