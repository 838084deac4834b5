"""The preprocessing of a network's inputs and outputs, held as buffers inside it.

One copy of each normalisation: :class:`DetectorNormalizer` (the torch form of
:meth:`hepvld.features.DetectorPreprocessor.transform`) and the target affine map of
:class:`~hepvld.models.base.ConditionalGenerator` are filled from the JSON states a
checkpoint stores, saved in the state dict, and shared by ``hepvld.unfold``, the exported
program and the consistency loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["DetectorNormalizer"]


class DetectorNormalizer(nn.Module):
    """Physical ``objects (B, N, F)``, ``globals (B, G)`` -> preprocessed (exportable).

    ``log1p`` on the flagged features, then ``(x - mean) / scale``; padded objects are 0.
    Without a state it is the identity (a network trained on already-preprocessed inputs).

    Parameters
    ----------
    object_features, global_features
        ``F`` and ``G``.
    state
        :meth:`hepvld.features.DetectorPreprocessor.state_dict`, or None.
    """

    obj_mean: Tensor
    obj_scale: Tensor
    glob_mean: Tensor
    glob_scale: Tensor
    log_obj: Tensor
    log_glob: Tensor

    def __init__(
        self, object_features: int, global_features: int, state: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        f32 = torch.float32
        log_obj = torch.zeros(object_features, dtype=torch.bool)
        log_glob = torch.zeros(global_features, dtype=torch.bool)
        obj_mean, obj_scale = torch.zeros(object_features), torch.ones(object_features)
        glob_mean, glob_scale = torch.zeros(global_features), torch.ones(global_features)
        if state is not None:
            log_obj[list(state["log_features"])] = True
            log_glob[list(state["log_globals"])] = True
            obj_mean = torch.as_tensor(state["obj_mean"], dtype=f32)
            obj_scale = torch.as_tensor(state["obj_scale"], dtype=f32)
            glob_mean = torch.as_tensor(state["glob_mean"], dtype=f32)
            glob_scale = torch.as_tensor(state["glob_scale"], dtype=f32)
            if obj_mean.shape != (object_features,) or glob_mean.shape != (global_features,):
                raise ValueError(
                    f"detector preprocessing state has {tuple(obj_mean.shape)} object and "
                    f"{tuple(glob_mean.shape)} global features; the network has "
                    f"{object_features} and {global_features}"
                )
        self.register_buffer("obj_mean", obj_mean.to(f32))
        self.register_buffer("obj_scale", obj_scale.to(f32))
        self.register_buffer("glob_mean", glob_mean.to(f32))
        self.register_buffer("glob_scale", glob_scale.to(f32))
        self.register_buffer("log_obj", log_obj)
        self.register_buffer("log_glob", log_glob)

    def forward(self, objects: Tensor, mask: Tensor, globals: Tensor) -> tuple[Tensor, Tensor]:
        """Physical ``objects (B, N, F)``, ``globals (B, G)`` -> preprocessed; padding = 0."""
        keep = mask.to(torch.bool).unsqueeze(-1)
        o = torch.where(keep, objects, torch.zeros_like(objects))
        o = torch.where(self.log_obj, torch.log1p(o), o)
        o = torch.where(keep, (o - self.obj_mean) / self.obj_scale, torch.zeros_like(o))
        g = torch.where(self.log_glob, torch.log1p(globals), globals)
        return o, (g - self.glob_mean) / self.glob_scale
