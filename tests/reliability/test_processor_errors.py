"""The coffea processor on a file with one corrupt basket: the error names the file and
the entry range of the failing chunk, and coffea's ``skipbadfiles`` works with it."""

from __future__ import annotations

import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

pytest.importorskip("coffea")
from coffea import processor
from coffea.nanoevents import NanoAODSchema

from hepvld.processor import UnfoldingProcessor
from hepvld.testing.synthetic import toy_events


def _write_in_baskets(path: Path, events: ak.Array, basket: int) -> None:
    data = {
        "run": np.ones(len(events), np.uint32),
        "luminosityBlock": np.ones(len(events), np.uint32),
        "event": ak.to_numpy(events.event),
        "genWeight": ak.to_numpy(events.genWeight),
        "MET_pt": ak.to_numpy(events.MET.pt),
        "MET_phi": ak.to_numpy(events.MET.phi),
    }
    for c in ("Jet", "Electron", "Muon", "GenPart"):
        data[c] = ak.zip({f: events[c][f] for f in events[c].fields})
    with uproot.recreate(path) as f:
        types = {
            k: v.dtype if isinstance(v, np.ndarray) else v.type.content for k, v in data.items()
        }
        f.mktree("Events", types)
        for lo in range(0, len(events), basket):
            f["Events"].extend({k: v[lo : lo + basket] for k, v in data.items()})


def _run(proc, path: Path, **options):
    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False, retries=1),
        schema=NanoAODSchema,
        chunksize=50,
        **options,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Missing cross-reference", category=RuntimeWarning
        )
        # coffea reports its retries and skips as warnings (errors under our pytest config)
        warnings.filterwarnings("ignore", message="Performed attempt")
        warnings.filterwarnings("ignore", message="Skipping bad file")
        return runner({"tt": [str(path)]}, proc, treename="Events")


def test_corrupt_basket_error_names_file_and_entries(toy_run: Path, tmp_path: Path) -> None:
    path = tmp_path / "corrupt.root"
    _write_in_baskets(path, toy_events(200, seed=5), basket=50)
    with uproot.open(path) as f:
        seek = int(f["Events"]["Jet_pt"].member("fBasketSeek")[1])  # entries 50-100
    raw = bytearray(path.read_bytes())
    raw[seek + 40 : seek + 200] = b"\x00" * 160
    path.write_bytes(bytes(raw))

    proc = UnfoldingProcessor(
        str(toy_run), ("t_had_pt",), n_samples=2, sampler="ddim", steps=2, seed=1
    )
    with pytest.raises(Exception, match=r"corrupt\.root.*entrystart=50, entrystop=100") as info:
        _run(proc, path)
    assert "Failed processing file" in str(info.value)
    assert "CorruptFileError" in repr(info.value)  # an OSError: coffea's skipbadfiles applies
    out = _run(proc, path, skipbadfiles=True)  # the bad chunk is skipped, the rest counted
    assert out["tt"]["cutflow"].total == 150
