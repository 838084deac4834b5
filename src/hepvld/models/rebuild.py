"""The one way to rebuild a network from a checkpoint's metadata.

``python -m hepvld.train`` stores in ``meta["extra"]``: ``model``, ``model_config``,
``object_features``, ``global_features``, ``target_level`` (+ ``target_options``),
``detector_preprocessor`` and ``target_preprocessor`` (JSON states), ``max_jets``, ...
:func:`rebuild_model` turns that into an untrained network whose normalisation buffers
hold the stored preprocessing; :func:`load_network` also loads the weights.
Checkpoints written before target levels existed (no ``target_level``) are ``parton``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from hepvld.models.base import ModelIO
from hepvld.models.config import ModelConfig
from hepvld.models.registry import build_model
from hepvld.targets import level_from_meta

__all__ = ["load_network", "model_io", "rebuild_model", "run_directory"]


def model_io(meta: Mapping[str, Any]) -> ModelIO:
    """The :class:`~hepvld.models.base.ModelIO` recorded in a checkpoint's ``extra`` metadata."""
    level = level_from_meta(meta)
    shift = scale = None
    if meta.get("target_preprocessor") is not None:
        shift, scale = level.preprocessing(meta["target_preprocessor"]).affine()
    return ModelIO(
        object_features=int(meta["object_features"]),
        global_features=int(meta["global_features"]),
        level=level,
        detector_preprocessing=meta.get("detector_preprocessor"),
        target_shift=shift,
        target_scale=scale,
    )


def rebuild_model(meta: Mapping[str, Any]) -> nn.Module:
    """An untrained network of a checkpoint's ``extra`` metadata (or the whole metadata
    of :func:`hepvld.training.load_checkpoint`, whose ``extra`` is then used)."""
    meta = meta.get("extra", meta)
    return build_model(
        str(meta["model"]), ModelConfig.from_dict(dict(meta["model_config"])), model_io(meta)
    )


def load_network(
    checkpoint: str | os.PathLike[str], *, device: str = "cpu", use_ema: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """``(network in eval mode on device, meta["extra"] with "step")`` of a checkpoint.

    The averaged (EMA) weights are used when present and ``use_ema``. A diffusion
    family's network also gets the run's distilled students (``RUN/distilled``,
    :func:`hepvld.models.student.attach_students`).
    """
    from hepvld.training.checkpoint import check_unfolding_meta, load_model

    def checked(meta: dict[str, Any]) -> nn.Module:
        check_unfolding_meta(meta.get("extra", meta), checkpoint)
        return rebuild_model(meta)

    from hepvld.models.student import attach_students

    net, ckpt = load_model(checkpoint, checked, use_ema=use_ema, device=device)
    meta = dict(ckpt.meta.get("extra", ckpt.meta))
    meta["step"] = ckpt.meta.get("step")
    attach_students(net, run_directory(ckpt.path))
    return net, meta


def run_directory(checkpoint_dir: str | os.PathLike[str]) -> Path:
    """The run directory of a checkpoint directory: ``RUN`` of ``RUN/checkpoints/step_*``
    (a checkpoint directory elsewhere is its own run directory)."""
    path = Path(checkpoint_dir)
    return path.parent.parent if path.parent.name == "checkpoints" else path
