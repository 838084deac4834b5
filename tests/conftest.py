"""Shared fixtures of the hepvld test suite."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_root_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated file: ~300 selected events, seed 1, MPI off (a few seconds).

    Session-scoped: generated once per test process (each pytest-xdist worker makes
    its own copy). Skips the requesting test when the ``generate`` extra (pythia8mc,
    fastjet) is not installed.
    """
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    from hepvld.generate import generate

    path = tmp_path_factory.mktemp("generated") / "tiny.root"
    generate(path, 300, seed=1, mpi=False, chunk_size=1000, progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_run_dir(tiny_root_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory holding a ``tiny``-preset VLD trained for one epoch on
    :func:`tiny_root_file` (about a second). Shapes and plumbing only: not a good model."""
    from hepvld.cli.train import main

    run_dir = tmp_path_factory.mktemp("runs") / "vld"
    rc = main(
        [
            str(tiny_root_file),
            "--run-dir",
            str(run_dir),
            "--preset",
            "tiny",
            "--train.epochs",
            "1",
            "--train.batch-size",
            "64",
            "--train.warmup-steps",
            "2",
            "--train.device",
            "cpu",
        ]
    )
    assert rc == 0
    return run_dir
