"""Run by ``torchrun`` in ``test_training_ddp.py``: train the toy regressor into ``argv[1]``.

Usage: ``torchrun --nproc_per_node P ddp_worker.py RUN_DIR BATCH_SIZE``.
"""

from __future__ import annotations

import sys

from toy_training_model import toy_data, toy_model

from hepvld.config import TrainConfig
from hepvld.training import train

#: Deterministic toy (no input noise, no dropout): one process with batch 2B and two
#: processes with batch B then see the same events and must take the same steps.
STEPS = 8


def deterministic_model():
    model = toy_model(0, noise=0.0)
    model.net[2].p = 0.0
    return model


def config(batch_size: int) -> TrainConfig:
    return TrainConfig(
        lr=1e-2,
        min_lr=1e-4,
        warmup_steps=2,
        max_steps=STEPS,
        batch_size=batch_size,
        log_every=1,
        device="cpu",
        seed=4,
        num_threads=1,
    )


def run(run_dir: str, batch_size: int):
    return train(
        deterministic_model(),
        toy_data(256),
        toy_data(64, seed=1),
        config(batch_size),
        run_dir,
        extra_state={"model": "toy"},
    )


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]))
