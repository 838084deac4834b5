"""benchmarks/gpu_suite.sh without a GPU: says so, runs its tiny CPU version, exits 0."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_suite.sh"


@pytest.mark.slow  # ~40 s: starts several interpreters
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the real suite runs")
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_suite_cpu_smoke() -> None:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no CUDA GPU found" in done.stdout
    assert "| tiny |" in done.stdout  # the training table has rows
    assert done.stdout.count("event-draws/s") == 2  # both sampling tables
