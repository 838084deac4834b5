"""``python -m hepvld.train file.root [more.root ...]``: train an unfolding model.

Reads the files with :mod:`hepvld.io`, applies the selection, splits events by hashed
event number into train / validation / test (the test part is never touched here, so
``hepvld.evaluate`` can use it), fits the preprocessing on the training part, and runs
:func:`hepvld.training.train`. Settings come from frozen dataclasses: defaults, then the
``--preset``, then an optional TOML file (``[train]`` and ``[model]`` tables), then
``--train.*`` / ``--model.*`` options. ``--dry-run`` prints the resolved settings.
"""

from __future__ import annotations

import argparse
import json
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


def _parser() -> argparse.ArgumentParser:
    from hepvld.config import TrainConfig, add_dataclass_arguments
    from hepvld.models import MODELS, PRESETS, ModelConfig

    p = argparse.ArgumentParser(
        prog="python -m hepvld.train",
        description="Train a hepvld unfolding model on NanoAOD-like ROOT files.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("files", nargs="+", type=Path, help="input ROOT files with parton-level truth")
    p.add_argument("--run-dir", "-o", type=Path, default=Path("runs/vld"), help="output directory")
    p.add_argument("--model", default="vld", choices=sorted(MODELS), help="model family")
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS), help="model size preset")
    p.add_argument("--config", type=Path, help="TOML file with [train] and [model] tables")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--dry-run", action="store_true", help="print the resolved settings and exit")
    p.add_argument("--tree", default="Events", help="input tree name")
    p.add_argument("--max-events", type=int, default=None, help="read at most this many entries")
    p.add_argument("--max-jets", type=int, default=20, help="jets kept per event")
    add_dataclass_arguments(p, TrainConfig, prefix="train")
    add_dataclass_arguments(p, ModelConfig, prefix="model")
    return p


def resolve_configs(args: argparse.Namespace) -> tuple[Any, Any]:
    """(TrainConfig, ModelConfig) from defaults < preset < TOML < command line."""
    from hepvld.config import TrainConfig, load_toml, merge, namespace_overrides
    from hepvld.models import PRESETS, ModelConfig

    toml = load_toml(args.config) if args.config else {}
    unknown = set(toml) - {"train", "model"}
    if unknown:
        raise SystemExit(
            f"{args.config}: unknown TOML tables {sorted(unknown)}; use [train] and [model]"
        )
    train_cfg = merge(
        TrainConfig, None, toml.get("train"), namespace_overrides(args, TrainConfig, "train")
    )
    model_over = dict(namespace_overrides(args, ModelConfig, "model"))
    variant = args.model if args.model in ("vld", "uc-vld", "c-vld") else None
    if variant:
        model_over.setdefault("variant", variant)
    model_cfg = merge(ModelConfig, PRESETS[args.preset], toml.get("model"), model_over)
    return train_cfg, model_cfg


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
    import hepvld
    from hepvld.config import to_dict

    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    train_cfg, model_cfg = resolve_configs(args)
    if args.dry_run:
        from hepvld.io import inspect_files

        inputs = inspect_files([str(f) for f in args.files], tree=args.tree)
        print(
            json.dumps(
                {
                    "model": args.model,
                    "train": to_dict(train_cfg),
                    "model_config": to_dict(model_cfg),
                    "files": [str(f) for f in args.files],
                    "inputs": inputs,
                    "run_dir": str(args.run_dir),
                },
                indent=2,
            )
        )
        return 0

    from hepvld.training import train
    from hepvld.training.checkpoint import load_checkpoint

    saved = None
    if args.resume:
        saved = load_checkpoint(args.run_dir).meta["extra"]
        if saved["model"] != args.model:
            raise SystemExit(
                f"--resume: {args.run_dir} holds a {saved['model']!r} model, not {args.model!r}"
            )
        model_cfg = type(model_cfg).from_dict(saved["model_config"])
    train_data, val_data, prep = prepare_data(
        args.files,
        max_jets=args.max_jets,
        tree=args.tree,
        entry_stop=args.max_events,
        preprocessing=saved,
    )
    meta = {
        "model": args.model,
        "model_config": to_dict(model_cfg),
        "object_features": int(train_data["objects"].shape[-1]),
        "global_features": int(train_data["globals"].shape[-1]),
        "target_dim": int(train_data["targets"].shape[-1]),
        "max_jets": args.max_jets,
        "hepvld_version": hepvld.__version__,
        "split": list(SPLIT),
        "files": [str(f) for f in args.files],
        **prep,
    }
    import torch

    # Same seed, same initial weights: the run is reproducible end to end. The global RNG
    # is forked so that the caller's state is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_cfg.seed)
        model = build_from_meta(meta)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("%s (%s preset): %.2fM parameters", args.model, args.preset, n_params / 1e6)
    result = train(
        model, train_data, val_data, train_cfg, args.run_dir, extra_state=meta, resume=args.resume
    )
    log.info(
        "finished at step %d (%s); checkpoint %s", result.step, result.stopped, result.checkpoint
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
