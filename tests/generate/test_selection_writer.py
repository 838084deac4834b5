"""Selection, cut-flow and ROOT-writer unit tests (synthetic arrays)."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepvld.generate.selection import CUTS, selection_stage, stage_cutflow
from hepvld.generate.writer import (
    COLLECTIONS,
    PROVENANCE_KEY,
    SCALAR_BRANCHES,
    TREE_NAME,
    EventWriter,
    compact,
    parse_compression,
)


def _leptons(pt: list[list[float]], iso_name: str, iso: float = 0.0) -> ak.Array:
    pts = ak.Array(pt)
    return ak.zip({"pt": pts, "eta": pts * 0.0, iso_name: pts * 0.0 + iso})


def test_selection_stage() -> None:
    electrons = _leptons([[30.0], [30.0], [30.0, 40.0], [30.0], [20.0]], "pfRelIso03_all")
    muons = _leptons([[], [50.0], [], [], []], "pfRelIso04_all")
    four_jets = [{"pt": 40.0, "eta": 0.0, "btagged": b} for b in (True, True, False, False)]
    jets = ak.Array([four_jets, four_jets, four_jets, four_jets[:3], four_jets])
    chain = np.array([True, True, True, True, True])
    stage = selection_stage(chain, electrons, muons, jets)
    assert stage.tolist() == [4, 1, 1, 2, 1]
    stage = selection_stage(~chain, electrons, muons, jets)
    assert stage.tolist() == [0] * 5


def test_isolation_and_btag_requirements() -> None:
    electrons = _leptons([[30.0], [30.0]], "pfRelIso03_all", iso=0.2)  # not isolated
    muons = _leptons([[], [30.0]], "pfRelIso04_all", iso=0.2)  # isolated (cut 0.25)
    jets = ak.Array([[{"pt": 40.0, "eta": 0.0, "btagged": i == 0} for i in range(5)]] * 2)
    assert selection_stage(np.array([True, True]), electrons, muons, jets).tolist() == [1, 3]


def test_cutflow_counts_and_merge() -> None:
    cutflow = stage_cutflow(np.array([0, 1, 4, 4, 2]))
    assert list(cutflow.as_dict().values()) == [5, 4, 3, 2, 2]
    total = cutflow + stage_cutflow(np.array([4]))
    assert total.total == 6 and total.passed == 3
    assert all(name in str(total) for name in CUTS)


@pytest.mark.parametrize(
    ("spec", "kind"), [("zstd:3", uproot.ZSTD), ("lz4", uproot.LZ4), ("zlib:6", uproot.ZLIB)]
)
def test_parse_compression(spec: str, kind: type) -> None:
    assert isinstance(parse_compression(spec), kind)
    assert parse_compression("none") is None
    with pytest.raises(ValueError, match="unknown compression"):
        parse_compression("gzip")


def _chunk(n: int) -> dict[str, object]:
    branches: dict[str, object] = {name: np.zeros(n) for name in SCALAR_BRANCHES}
    branches["event"] = np.arange(n)
    for name, fields in COLLECTIONS.items():
        branches[name] = ak.zip({f: ak.Array([[0.0] * (i % 3) for i in range(n)]) for f in fields})
    return branches


def test_writer_writes_a_ttree_with_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "w.root"
    with EventWriter(path, compression="lz4") as writer:
        writer.write(_chunk(4))
        writer.write(_chunk(0))
        writer.write(_chunk(3))
        with pytest.raises(ValueError, match="missing"):
            writer.write({"event": np.arange(2)})
    with uproot.open(path) as f:
        tree = f[TREE_NAME]
        assert isinstance(tree, uproot.TTree)
        assert tree.num_entries == 7
        assert tree["nJet"].array().tolist() == [0, 1, 2, 0, 0, 1, 2]
        assert tree["Jet_btagged"].typename == "bool[]"
        assert tree["event"].typename == "uint64_t"


def _read(path: Path) -> tuple[dict[str, list[object]], int, str]:
    with uproot.open(path) as f:
        tree = f[TREE_NAME]
        arrays = {name: tree[name].array(library="ak").tolist() for name in tree.keys()}  # noqa: SIM118 (uproot)
        return arrays, tree["Jet_pt"].num_baskets, str(f[PROVENANCE_KEY])


def test_a_finished_file_is_compacted_into_large_baskets(tmp_path: Path) -> None:
    chunks = [_chunk(5), _chunk(3), _chunk(7)]
    for i, chunk in enumerate(chunks):
        chunk["event"] = np.arange(5 * i, 5 * i + len(chunk["event"]))
    killed, done = tmp_path / "killed.root", tmp_path / "done.root"
    for path, complete in ((killed, False), (done, True)):
        writer = EventWriter(path, compression="zstd:1", provenance={"seed": 3})
        for chunk in chunks:
            writer.write(chunk)
        writer.close(complete=complete)
    as_written, baskets, _ = _read(killed)  # an unfinished file keeps one basket per write
    compacted, compacted_baskets, provenance = _read(done)
    assert baskets == 3 and compacted_baskets == 1
    assert compacted == as_written  # every branch, entry by entry
    assert json.loads(provenance)["seed"] == 3 and json.loads(provenance)["complete"]
    assert not list(tmp_path.glob(".*partial"))
    assert not compact(done)  # already compact: left alone
    assert compact(killed, basket_entries=10) and _read(killed)[1] == 2
    assert _read(killed)[0] == as_written
