"""In-memory event tensors: conversion, deterministic epoch order, batching by indexing.

No ``Dataset``/``DataLoader`` and no per-event collate: a batch is ``tensor[idx]`` for every
tensor of the bundle. The order of epoch ``e`` depends only on ``(seed, e)``, so a resumed
run replays it exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Batch",
    "as_tensor_dict",
    "batch_weight",
    "derive_seed",
    "epoch_indices",
    "num_events",
    "take",
]

#: A batch: ``objects (B,N,F)``, ``mask (B,N)``, ``globals (B,G)``, ``targets (B,K,H)``
#: (preprocessed), ``target_mask (B,K)``, ``weights (B,)`` and whatever else the bundle
#: holds, all with leading size ``B``. The one definition (the models import it).
Batch = dict[str, Tensor]


def as_tensor_dict(data: Any) -> dict[str, Tensor]:
    """Turn event data into ``{name: Tensor (B, ...)}`` sharing one leading size ``B``.

    Accepts a mapping of tensors / numpy arrays or a dataclass of them (e.g. the arrays of
    :func:`hepvld.data.prepare_data`). Entries that are neither tensors nor arrays (a
    cut-flow, say) are dropped.
    """
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
    if not isinstance(data, Mapping):
        raise TypeError(f"training data must be a mapping of tensors, got {type(data)}")
    out = {
        str(k): (v if isinstance(v, Tensor) else torch.from_numpy(np.ascontiguousarray(v)))
        for k, v in data.items()
        if isinstance(v, (Tensor, np.ndarray))
    }
    if not out:
        raise ValueError("training data holds no tensors")
    sizes = {k: v.shape[0] if v.ndim else None for k, v in out.items()}
    first = next(iter(sizes.values()))
    for key, size in sizes.items():
        if size is None or size != first:
            raise ValueError(
                f"tensor {key!r} has leading size {size}, expected {first} (all: {sizes})"
            )
    return out


def num_events(data: Mapping[str, Tensor]) -> int:
    """Leading size ``B`` of a tensor bundle."""
    return next(iter(data.values())).shape[0]


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed from a base seed and labels, e.g. ``derive_seed(seed, "epoch", 3)``.

    Different labels give independent-looking streams; the same labels always the same one.
    """
    text = ":".join(str(k) for k in (seed, *keys)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def epoch_indices(n: int, seed: int, epoch: int, *, rank: int = 0, world_size: int = 1) -> Tensor:
    """This process's event order for one epoch.

    A permutation of ``range(n)`` from a generator seeded by ``(seed, epoch)``, split
    round-robin over ``world_size`` processes and trimmed so that each gets
    ``n // world_size`` events (like ``DistributedSampler(drop_last=True)``).

    Returns
    -------
    Tensor (n // world_size,), int64
    """
    gen = torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch))
    perm = torch.randperm(n, generator=gen)
    per_rank = n // world_size
    return perm[rank : per_rank * world_size : world_size]


def take(data: Mapping[str, Tensor], idx: Tensor, device: torch.device) -> Batch:
    """``{k: v[idx]}`` on ``device`` (the data may already live there)."""
    idx = idx.to(next(iter(data.values())).device)
    return {k: v[idx].to(device) for k, v in data.items()}


def batch_weight(batch: Batch) -> Tensor:
    """Sum of the per-event MC weights (the batch size when there is no ``weights``)."""
    if "weights" in batch:
        return batch["weights"].detach().sum().float()
    size = next(iter(batch.values())).shape[0]
    return torch.tensor(float(size), device=next(iter(batch.values())).device)
