"""Training infrastructure: the loop, checkpoints (safetensors + JSON), EMA, run records.

>>> from hepvld.config import TrainConfig
>>> from hepvld.training import train, load_model
>>> result = train(model, train_tensors, val_tensors, TrainConfig(epochs=20), "runs/vld")
>>> model, ckpt = load_model("runs/vld", lambda meta: build(meta["extra"]))

See ``docs/training.md`` for the model contract, the run-directory layout, resuming and
multi-GPU training with ``torchrun``.
"""

from hepvld.training.checkpoint import (
    Checkpoint,
    find_checkpoint,
    load_checkpoint,
    load_model,
    save_checkpoint,
    unwrap_model,
)
from hepvld.training.loop import LossModule, TrainResult, evaluate, train
from hepvld.training.optim import EMA, build_optimizer, build_scheduler, warmup_cosine

__all__ = [
    "EMA",
    "Checkpoint",
    "LossModule",
    "TrainResult",
    "build_optimizer",
    "build_scheduler",
    "evaluate",
    "find_checkpoint",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "train",
    "unwrap_model",
    "warmup_cosine",
]
