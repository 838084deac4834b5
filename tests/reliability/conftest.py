"""Fixtures of the bad-input corpus: every bad file is built here from synthetic events
(no committed blobs), plus one tiny trained run for the checkpoint and unfold cases."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepvld.testing.synthetic import toy_events, write_root


def nano_branches(ev: ak.Array) -> dict:
    """Events as NanoAOD-style branches for ``uproot.mktree`` (collections as records)."""
    out: dict = {
        "event": ak.to_numpy(ev.event),
        "genWeight": ak.to_numpy(ev.genWeight),
        "MET_pt": ak.to_numpy(ev.MET.pt),
        "MET_phi": ak.to_numpy(ev.MET.phi),
    }
    for c in ("Jet", "Electron", "Muon", "GenPart"):
        out[c] = ak.zip({f: ev[c][f] for f in ev[c].fields})
    return out


def write_branches(path: Path, branches: dict, tree: str = "Events") -> Path:
    """Write ``branches`` (numpy or awkward, records become ``Coll_field`` with ``nColl``)."""
    with uproot.recreate(path) as f:
        f.mktree(
            tree,
            {
                k: (v.dtype if isinstance(v, np.ndarray) else v.type.content)
                for k, v in branches.items()
            },
        )
        f[tree].extend(branches)
    return path


def set_flat(ev: ak.Array, collection: str, field: str, edit: Callable[[np.ndarray], None]):
    """A copy of ``ev`` with ``collection.field`` changed by ``edit(flat_values)`` in place."""
    col = ev[collection]
    if col.ndim == 1:
        flat = ak.to_numpy(col[field]).copy()
        edit(flat)
        new = flat
    else:
        flat = ak.to_numpy(ak.flatten(col[field])).copy()
        edit(flat)
        new = ak.unflatten(flat, ak.num(col[field]))
    return ak.with_field(ev, ak.with_field(col, new, field), collection)


@pytest.fixture(scope="session")
def good_events() -> ak.Array:
    return toy_events(200, seed=7)


@pytest.fixture(scope="session")
def good_file(good_events: ak.Array, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "good.root"
    write_root(str(path), good_events)
    return path


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``tiny`` VLD trained for a few steps on toy events (a few seconds; plumbing only)."""
    from hepvld.train import main

    base = tmp_path_factory.mktemp("corpus_run")
    data = base / "train.root"
    write_root(str(data), toy_events(1500, seed=11))
    run = base / "run"
    main(
        [
            str(data),
            "--run-dir",
            str(run),
            "--model",  # the 55-output VLD these tests are written around
            "vld",
            "--target.parameterisation",
            "components",
            "--preset",
            "tiny",
            "--train.max-steps",
            "4",
            "--train.batch-size",
            "64",
            "--train.warmup-steps",
            "1",
            "--train.device",
            "cpu",
        ]
    )
    return run


@pytest.fixture
def run_copy(toy_run: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`toy_run` that a test may damage."""
    dest = tmp_path / "run"
    shutil.copytree(toy_run, dest)
    return dest
