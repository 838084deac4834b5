"""DistributedDataParallel under ``torchrun``: two processes (gloo, CPU) with batch B
follow the same loss curve as one process with batch 2B (slow: starts two interpreters)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_worker import STEPS, run

from hepvld.training import load_checkpoint

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


def _curve(run_dir: Path) -> dict[str, list[float]]:
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, list[float]] = {}
    for row in rows:
        for key in ("loss", "mse"):
            out.setdefault(f"{row['split']}.{key}", []).append(float(row[key]))
    return out


def test_two_processes_match_one_with_the_doubled_batch(tmp_path: Path) -> None:
    single = run(str(tmp_path / "single"), 32)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(HERE / "ddp_worker.py"),
        str(tmp_path / "ddp"),
        "16",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    ddp_curve, single_curve = _curve(tmp_path / "ddp"), _curve(tmp_path / "single")
    assert len(single_curve["train.loss"]) == STEPS
    assert ddp_curve.keys() == single_curve.keys()
    for key, values in single_curve.items():
        assert ddp_curve[key] == pytest.approx(values, rel=1e-5, abs=1e-7), key
    ddp_state = load_checkpoint(tmp_path / "ddp").model_state
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp_state[key], value, rtol=1e-5, atol=1e-6)
