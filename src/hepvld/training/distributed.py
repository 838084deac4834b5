"""Device choice and multi-process (``torchrun``) data parallelism.

Under ``torchrun`` (``LOCAL_RANK`` and ``WORLD_SIZE`` set) :func:`distributed_context`
joins the process group (NCCL on GPU, gloo on CPU), gives each process its own GPU and
tears the group down afterwards if it created it. Without ``torchrun`` it is a no-op and
every helper here degrades to the single-process case.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "DistContext",
    "all_reduce_sum",
    "any_rank",
    "distributed_context",
    "gather_states",
    "resolve_device",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int
    world_size: int
    device: torch.device
    enabled: bool  # a process group is active

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs and writes files."""
        return self.rank == 0


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"cpu"`` | ``"cuda"`` | ``"auto"`` -> ``torch.device`` (``cuda:{local_rank}`` on GPU)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device='cuda' requested but torch.cuda.is_available() is False")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")


@contextlib.contextmanager
def distributed_context(device: str) -> Iterator[DistContext]:
    """Join the ``torchrun`` process group if launched by it; yield this process's place.

    An already initialised process group (created by the caller) is used as is and left
    alone on exit.
    """
    launched = "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device, local_rank)
    created = False
    if launched and dist.is_available() and not dist.is_initialized():
        if dev.type == "cuda":
            dist.init_process_group("nccl", device_id=dev)
        else:
            dist.init_process_group("gloo")
        created = True
    enabled = dist.is_available() and dist.is_initialized()
    ctx = DistContext(
        rank=dist.get_rank() if enabled else 0,
        world_size=dist.get_world_size() if enabled else 1,
        device=dev,
        enabled=enabled,
    )
    try:
        yield ctx
    finally:
        if created:
            dist.destroy_process_group()


def all_reduce_sum(tensor: Tensor, ctx: DistContext) -> Tensor:
    """Sum ``tensor`` over processes, in place (identity without a process group)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every process if ``flag`` is true on any of them."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([float(flag)], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_states(states: Mapping[str, Tensor], ctx: DistContext) -> dict[str, Tensor]:
    """Collect every process's uint8 state tensors as ``{"rank{r}.{name}": tensor}`` (CPU).

    All processes must call this with the same names and sizes (generator states are).
    """
    if not ctx.enabled:
        return {f"rank0.{k}": v.cpu() for k, v in states.items()}
    out = {}
    # NCCL can only move GPU tensors
    comm_device = ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")
    for name, value in states.items():
        local = value.to(comm_device)
        parts = [torch.empty_like(local) for _ in range(ctx.world_size)]
        dist.all_gather(parts, local)
        out.update({f"rank{r}.{name}": p.cpu() for r, p in enumerate(parts)})
    return out
