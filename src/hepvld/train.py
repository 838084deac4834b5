"""Training data: read, select, split by event number, preprocess.

:func:`prepare_data` turns ROOT files into the model's input arrays (the test part of the
split by hashed event number is never returned, so ``hepvld evaluate`` can use it);
:func:`build_from_meta` rebuilds an untrained model from a checkpoint's metadata. The
command line is :mod:`hepvld.cli.train` (``hepvld train``); ``python -m hepvld.train``
still runs it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build_from_meta", "main", "prepare_data"]

log = logging.getLogger("hepvld.train")

#: Train / validation / test fractions of the split by event number.
SPLIT = (0.8, 0.1, 0.1)


def prepare_data(
    files: Sequence[Path],
    *,
    max_jets: int,
    tree: str = "Events",
    entry_stop: int | None = None,
    preprocessing: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Read, split and preprocess; returns ``(train, val, preprocessing_state)``.

    ``train``/``val`` are dicts of float32 / bool numpy arrays in the model's input space
    (``objects (B, N, F)``, ``mask (B, N)``, ``globals (B, G)``, ``targets (B, 55)``,
    ``weights (B,)``). ``preprocessing`` (from a checkpoint) is reused instead of refitting.
    """
    from hepvld.data import load_tensors, split_by_event
    from hepvld.features import DetectorPreprocessor, TargetPreprocessor

    tensors = load_tensors(
        [str(f) for f in files],
        max_jets=max_jets,
        require_truth=True,
        entry_stop=entry_stop,
        tree=tree,
    )
    if len(tensors) == 0:
        raise SystemExit(
            f"no event of {[str(f) for f in files]} passes the selection:\n{tensors.cutflow}"
        )
    train, val, test = split_by_event(tensors, SPLIT)
    log.info(
        "split by event number: %d train, %d validation, %d test (held out)",
        len(train),
        len(val),
        len(test),
    )
    if preprocessing is None:
        det_pre = DetectorPreprocessor().fit(train.objects, train.mask, train.globals)
        tgt_pre = TargetPreprocessor().fit(train.targets, train.weights)
    else:
        det_pre = DetectorPreprocessor.from_state_dict(preprocessing["detector_preprocessor"])
        tgt_pre = TargetPreprocessor.from_state_dict(preprocessing["target_preprocessor"])

    def arrays(part: Any) -> dict[str, np.ndarray]:
        objects, globals_ = det_pre.transform(part.objects, part.mask, part.globals)
        return {
            "objects": np.asarray(objects, np.float32),
            "mask": part.mask,
            "globals": np.asarray(globals_, np.float32),
            "targets": np.asarray(tgt_pre.transform(part.targets), np.float32),
            "weights": np.asarray(part.weights, np.float32),
        }

    state = {
        "detector_preprocessor": det_pre.state_dict(),
        "target_preprocessor": tgt_pre.state_dict(),
    }
    return arrays(train), arrays(val), state


def build_from_meta(meta: dict[str, Any]):
    """Rebuild an (untrained) model from a checkpoint's ``extra`` metadata."""
    import torch

    from hepvld.models import ModelConfig, build_model

    tgt = meta["target_preprocessor"]
    return build_model(
        meta["model"],
        ModelConfig.from_dict(meta["model_config"]),
        object_features=int(meta["object_features"]),
        global_features=int(meta["global_features"]),
        target_dim=int(meta["target_dim"]),
        target_shift=torch.tensor(tgt["mean"], dtype=torch.float32),
        target_scale=torch.tensor(tgt["scale"], dtype=torch.float32),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``hepvld train`` (:func:`hepvld.cli.train.main`), kept for ``python -m hepvld.train``."""
    from hepvld.cli.train import main as cli_main

    return cli_main(argv, prog="python -m hepvld.train")


if __name__ == "__main__":
    sys.exit(main())
