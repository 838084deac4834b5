"""Checkpoints as safetensors + JSON, written atomically; nothing is ever pickled.

Layout of a run directory::

    run_dir/checkpoints/
        step_00001200/
            model.safetensors   raw weights (``model.state_dict()``)
            ema.safetensors     averaged weights, same keys (used for sampling)
            state.safetensors   optimiser tensors ("optimizer/...") and RNG states ("rng/...")
            meta.json           step, epoch, config, extra (model name, model config,
                                preprocessing, ...), versions, and the JSON skeleton of the
                                optimiser / scheduler / grad-scaler state dicts
        latest.json             {"checkpoint": "step_00001200", "step": 1200}, written last

A checkpoint directory is filled under a temporary name and renamed into place with
``os.replace``; ``latest.json`` is replaced only afterwards. A run killed at any moment
therefore leaves the previous checkpoint (and its pointer) intact.

Rebuilding the network is the caller's job: :func:`load_model` takes a
``model_factory(meta) -> nn.Module`` (e.g. a lookup in ``hepvld.models`` using
``meta["extra"]``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

import hepvld
from hepvld.io.errors import CheckpointError, CheckpointNotFoundError

__all__ = [
    "FORMAT_VERSION",
    "UNFOLDING_KEYS",
    "Checkpoint",
    "CheckpointError",
    "CheckpointNotFoundError",
    "check_unfolding_meta",
    "find_checkpoint",
    "load_checkpoint",
    "load_model",
    "load_state_checked",
    "save_checkpoint",
    "unwrap_model",
]

log = logging.getLogger(__name__)

#: Bumped whenever the on-disk layout changes incompatibly.
FORMAT_VERSION = 1
_LATEST = "latest.json"
_META = "meta.json"


@dataclass
class Checkpoint:
    """Everything read back from one checkpoint directory (tensors on ``map_location``)."""

    path: Path
    #: step, epoch, batch_in_epoch, config, extra, ema_updates, versions, time
    meta: dict[str, Any]
    model_state: dict[str, Tensor]
    ema_state: dict[str, Tensor] | None
    optimizer_state: dict[str, Any] | None
    scheduler_state: dict[str, Any] | None
    scaler_state: dict[str, Any] | None
    #: e.g. ``{"rank0.loss": uint8 tensor, "rank0.cpu": ..., "rank0.cuda": ...}``
    rng_state: dict[str, Tensor]

    @property
    def step(self) -> int:
        return int(self.meta["step"])


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside ``DistributedDataParallel`` and/or ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile
            model = cast(nn.Module, model._orig_mod)
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


# --------------------------------------------------------------------------- state-dict <-> JSON


def _to_json_tree(obj: Any, tensors: dict[str, Tensor], path: str) -> Any:
    """Replace tensors by ``{"__tensor__": key}`` (storing them in ``tensors``).

    Dicts with non-string keys become ``{"__items__": [[key, value], ...]}`` and tuples
    ``{"__tuple__": [...]}``, so :func:`_from_json_tree` restores the exact structure.
    """
    if isinstance(obj, Tensor):
        tensors[path] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": path}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj) and not any(
            k in ("__tensor__", "__items__", "__tuple__") for k in obj
        ):
            return {k: _to_json_tree(v, tensors, f"{path}/{k}") for k, v in obj.items()}
        return {
            "__items__": [[k, _to_json_tree(v, tensors, f"{path}/{k}")] for k, v in obj.items()]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [_to_json_tree(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_to_json_tree(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {path!r} in a checkpoint without pickle")


def _from_json_tree(obj: Any, tensors: Mapping[str, Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {k: _from_json_tree(v, tensors) for k, v in obj["__items__"]}
        if set(obj) == {"__tuple__"}:
            return tuple(_from_json_tree(v, tensors) for v in obj["__tuple__"])
        return {k: _from_json_tree(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json_tree(v, tensors) for v in obj]
    return obj


def _weights(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    # clone: safetensors refuses tensors sharing memory (tied weights) or non-contiguous ones
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


# --------------------------------------------------------------------------- save


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _save_tensors(path: Path, tensors: dict[str, Tensor]) -> None:
    save_file(tensors, str(path), metadata={"format": "hepvld", "version": str(FORMAT_VERSION)})
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    _write_json(tmp, obj)
    os.replace(tmp, path)


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    model: nn.Module,
    *,
    step: int,
    epoch: int,
    batch_in_epoch: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    ema: Any = None,
    rng_state: Mapping[str, Tensor] | None = None,
    config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    keep_last: int | None = None,
) -> Path:
    """Write ``run_dir/checkpoints/step_{step:08d}/`` atomically, then point ``latest.json`` at it.

    Parameters
    ----------
    run_dir
        The run directory.
    model
        The network (DDP / compile wrappers are unwrapped).
    step, epoch, batch_in_epoch
        Where training resumes: the next step runs batch ``batch_in_epoch`` of ``epoch``.
    optimizer, scheduler, scaler
        Saved via their ``state_dict()``: tensors into ``state.safetensors``, the rest into
        ``meta.json``.
    ema
        A :class:`hepvld.training.optim.EMA` (``.module`` and ``.num_updates``) or ``None``.
    rng_state
        Generator states as uint8 tensors (``Generator.get_state()``).
    config
        The training config as a JSON dict (``hepvld.config.to_dict(TrainConfig)``).
    extra
        JSON-serialisable bundle for whoever rebuilds the model: model name, model config,
        preprocessing state, ...
    keep_last
        Delete all but this many most recent checkpoints (after the pointer is updated).

    Returns
    -------
    Path of the checkpoint directory.
    """
    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    for stale in (*ckpt_root.glob(".tmp-step_*"), *ckpt_root.glob(".old-step_*")):
        # left by a run killed while saving (one writer per run directory)
        log.info("removing %s, left by an interrupted save", stale)
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step_{step:08d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        state_tensors: dict[str, Tensor] = {}
        skeleton = {
            key: (None if obj is None else _to_json_tree(obj.state_dict(), state_tensors, key))
            for key, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler))
        }
        for key, value in (rng_state or {}).items():
            state_tensors[f"rng/{key}"] = value.detach().to("cpu").contiguous().clone()
        meta = {
            "format_version": FORMAT_VERSION,
            "hepvld_version": hepvld.__version__,
            "torch_version": torch.__version__,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "step": int(step),
            "epoch": int(epoch),
            "batch_in_epoch": int(batch_in_epoch),
            "ema_updates": None if ema is None else int(ema.num_updates),
            "config": dict(config or {}),
            "extra": dict(extra or {}),
            "state": skeleton,
        }
        _save_tensors(tmp / "model.safetensors", _weights(unwrap_model(model).state_dict()))
        if ema is not None:
            _save_tensors(tmp / "ema.safetensors", _weights(ema.module.state_dict()))
        _save_tensors(tmp / "state.safetensors", state_tensors)
        _write_json(tmp / _META, meta)  # last: a directory with meta.json is complete
        if final.exists():  # re-saving the same step: swap the old one out first
            old = ckpt_root / f".old-{name}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _atomic_json(ckpt_root / _LATEST, {"checkpoint": name, "step": int(step)})
    log.info("saved checkpoint %s", final)
    if keep_last is not None:
        for old_ckpt in sorted(ckpt_root.glob("step_*"))[:-keep_last]:
            if old_ckpt != final:
                shutil.rmtree(old_ckpt, ignore_errors=True)
    return final


# --------------------------------------------------------------------------- load


#: Leading bytes of files that are *not* checkpoints but pickles / torch zip archives.
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")


def _read_json(path: Path, what: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{path} ({what}) is truncated or not JSON ({exc}); the checkpoint is damaged: "
            "use an earlier one (checkpoints/step_*) or retrain"
        ) from None


def _refuse_file(path: Path) -> None:
    """A plain file offered as a checkpoint: say what it is, never unpickle it."""
    with open(path, "rb") as f:
        head = f.read(4)
    if path.suffix in (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin") or head.startswith(
        _PICKLE_MAGIC
    ):
        raise CheckpointError(
            f"{path} is a pickle / torch.save file: hepvld never unpickles (loading a pickle can "
            "run arbitrary code); pass a run directory or checkpoint directory written by "
            "python -m hepvld.train (model.safetensors + meta.json)"
        )
    raise CheckpointError(
        f"{path} is a file, not a checkpoint: pass a run directory or a checkpoint "
        "directory (model.safetensors + meta.json)"
    )


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Resolve a run directory, its ``checkpoints/`` folder, ``latest.json`` or a checkpoint
    directory to the checkpoint directory holding ``meta.json``.

    Raises
    ------
    CheckpointNotFoundError
        If there is no complete checkpoint there (a ``FileNotFoundError``).
    CheckpointError
        A file that is no checkpoint (e.g. a pickled ``.pt``: refused, never unpickled) or
        a damaged ``latest.json``.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(
            f"checkpoint {path} does not exist: pass the run directory of python -m hepvld.train "
            "(-o/--run-dir) or a checkpoint directory inside it"
        )
    if path.is_file() and path.name not in (_LATEST, _META):
        _refuse_file(path)
    if path.is_file() and path.name == _META:
        return path.parent
    for candidate in (path, path / "checkpoints"):
        if (candidate / _META).is_file():
            return candidate
        pointer = candidate if candidate.name == _LATEST else candidate / _LATEST
        if pointer.is_file():
            pointed = _read_json(pointer, "checkpoint pointer")
            if not isinstance(pointed, dict) or "checkpoint" not in pointed:
                raise CheckpointError(f"{pointer} has no 'checkpoint' entry; it is damaged")
            target = pointer.parent / str(pointed["checkpoint"])
            if (target / _META).is_file():
                return target
            raise CheckpointNotFoundError(
                f"{pointer} points to {target}, which has no {_META}; pass an existing "
                "checkpoint directory (checkpoints/step_*) instead"
            )
    raise CheckpointNotFoundError(
        f"no checkpoint at {path} (looked for {_META} and checkpoints/{_LATEST}); pass the run "
        "directory of python -m hepvld.train or a checkpoint directory inside it"
    )


def _load_tensors(path: Path, device: str) -> dict[str, Tensor]:
    try:
        return load_file(path, device=device)
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} is missing: the checkpoint {path.parent} is incomplete; use an earlier "
            "one (checkpoints/step_*) or retrain"
        ) from None
    except Exception as exc:  # safetensors raises SafetensorError for damaged headers
        raise CheckpointError(
            f"{path} is truncated or damaged ({type(exc).__name__}: {exc}); use an earlier "
            "checkpoint (checkpoints/step_*) or retrain"
        ) from None


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (safetensors + JSON only).

    Parameters
    ----------
    path
        Run directory (latest checkpoint), ``checkpoints/``, ``latest.json`` or a
        checkpoint directory.
    map_location
        Device for the tensors.

    Raises
    ------
    CheckpointNotFoundError, CheckpointError
        Missing, damaged (truncated JSON / safetensors), or of a newer format; the message
        names the file and what to do.
    """
    ckpt_dir = find_checkpoint(path)
    meta = _read_json(ckpt_dir / _META, "checkpoint metadata")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{ckpt_dir / _META} is not a JSON object; the checkpoint is damaged")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        by = meta.get("hepvld_version", "an unknown hepvld version")
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise CheckpointError(
            f"{ckpt_dir}: checkpoint format {version!r} (written by hepvld {by}); this hepvld "
            f"({hepvld.__version__}) reads format {FORMAT_VERSION}: "
            + ("upgrade hepvld to load it" if newer else "retrain with this hepvld version")
        )
    missing = [k for k in ("step", "state") if k not in meta]
    if missing:
        raise CheckpointError(f"{ckpt_dir / _META} lacks the keys {missing}; it is damaged")
    device = str(map_location)
    model_state = _load_tensors(ckpt_dir / "model.safetensors", device)
    ema_file = ckpt_dir / "ema.safetensors"
    ema_state = _load_tensors(ema_file, device) if ema_file.is_file() else None
    tensors = _load_tensors(ckpt_dir / "state.safetensors", device)
    skeleton = meta.pop("state")
    try:
        optimizer_state, scheduler_state, scaler_state = (
            None if skeleton.get(key) is None else _from_json_tree(skeleton[key], tensors)
            for key in ("optimizer", "scheduler", "scaler")
        )
    except (KeyError, AttributeError, TypeError) as exc:
        raise CheckpointError(
            f"{ckpt_dir}: optimiser state in {_META} does not match state.safetensors ({exc!r}); "
            "the checkpoint is damaged"
        ) from None
    rng_state = {k[len("rng/") :]: v.cpu() for k, v in tensors.items() if k.startswith("rng/")}
    return Checkpoint(
        path=ckpt_dir,
        meta=meta,
        model_state=model_state,
        ema_state=ema_state,
        optimizer_state=optimizer_state,
        scheduler_state=scheduler_state,
        scaler_state=scaler_state,
        rng_state=rng_state,
    )


#: ``meta["extra"]`` keys an unfolding checkpoint (``python -m hepvld.train``) must hold.
UNFOLDING_KEYS: tuple[str, ...] = (
    "model",
    "model_config",
    "object_features",
    "global_features",
    "target_dim",
    "detector_preprocessor",
    "target_preprocessor",
)


def check_unfolding_meta(extra: Mapping[str, Any], where: str | os.PathLike[str]) -> None:
    """The metadata of an unfolding checkpoint is complete and self-consistent.

    Checks that every key of :data:`UNFOLDING_KEYS` is present and that the preprocessing
    state matches the network's sizes (target preprocessor: ``target_dim`` entries;
    detector preprocessor: ``object_features`` / ``global_features`` columns).

    Raises
    ------
    CheckpointError
        Naming the checkpoint and the missing key or the mismatching sizes.
    """
    missing = [k for k in UNFOLDING_KEYS if k not in extra]
    if missing:
        raise CheckpointError(
            f"{where}: checkpoint metadata lacks {missing}: it was not written by "
            "python -m hepvld.train (or is damaged); retrain or pass another checkpoint"
        )

    def size(state: Any, key: str) -> int | None:
        value = state.get(key) if isinstance(state, Mapping) else None
        return len(value) if isinstance(value, list) else None

    tgt = extra["target_preprocessor"]
    checks = [
        ("target_preprocessor mean", size(tgt, "mean"), int(extra["target_dim"])),
        ("target_preprocessor scale", size(tgt, "scale"), int(extra["target_dim"])),
    ]
    det = extra["detector_preprocessor"]
    for key in ("obj_mean", "obj_scale"):
        checks.append(
            (f"detector_preprocessor {key}", size(det, key), int(extra["object_features"]))
        )
    for key in ("glob_mean", "glob_scale"):
        checks.append(
            (f"detector_preprocessor {key}", size(det, key), int(extra["global_features"]))
        )
    for name, got, expected in checks:
        if got is not None and expected is not None and got != expected:
            raise CheckpointError(
                f"{where}: {name} has {got} entries but the network expects {expected}: the "
                "preprocessing state does not belong to this network; retrain or pass the "
                "checkpoint it came from"
            )


def load_state_checked(model: nn.Module, state: Mapping[str, Tensor], where: Any) -> None:
    """``model.load_state_dict(state)`` with a :class:`CheckpointError` naming the first
    missing / unexpected / mis-shaped tensors (weights of another model).

    A model with ``upgrade_state_dict(state) -> state`` first completes the state of a
    checkpoint written by an earlier version (e.g. VL-VLD's type-composition head)."""
    upgrade = getattr(model, "upgrade_state_dict", None)
    if callable(upgrade):
        state = upgrade(dict(state))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[:2]})")
        raise CheckpointError(
            f"{where}: the weights do not fit the network described by its metadata: "
            + "; ".join(parts)
            + ": model.safetensors comes from another model; use the checkpoint's own files"
        )
    model.load_state_dict(state)


def load_model(
    path: str | os.PathLike[str],
    model_factory: Callable[[dict[str, Any]], nn.Module],
    *,
    use_ema: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, Checkpoint]:
    """Rebuild a network from a checkpoint: ``model_factory(meta)`` then load the weights.

    Parameters
    ----------
    path
        As for :func:`load_checkpoint`.
    model_factory
        Builds an untrained module from the checkpoint metadata (``meta["extra"]`` holds
        what :func:`save_checkpoint` was given as ``extra``).
    use_ema
        Load the averaged weights when the checkpoint has them (the default for sampling).
    device
        Where the returned model lives; it is in ``eval()`` mode.
    """
    ckpt = load_checkpoint(path)
    model = model_factory(ckpt.meta)
    state = ckpt.ema_state if (use_ema and ckpt.ema_state is not None) else ckpt.model_state
    load_state_checked(model, state, ckpt.path)
    return model.to(device).eval(), ckpt
