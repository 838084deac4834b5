"""Synthetic NanoAOD-like / Delphes-layout files for the reader tests."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import pytest

from hepvld.testing.synthetic import toy_events, write_root


@pytest.fixture(scope="module")
def toy() -> ak.Array:
    return toy_events(300, seed=3, decay=["semileptonic"] * 8 + ["tau", "dileptonic"])


@pytest.fixture(scope="module")
def nano_file(toy: ak.Array, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("io") / "toy_nano.root"
    write_root(str(path), toy)
    return path


@pytest.fixture(scope="module")
def delphes_file(toy: ak.Array, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("io") / "toy_delphes.root"
    write_root(str(path), toy, layout="delphes")
    return path
