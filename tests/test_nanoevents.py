"""``hepvld.nanoevents.HepvldSchema``: no cross-reference warnings, in worker processes too."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pytest.importorskip("coffea")

from coffea import processor
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from hepvld.nanoevents import HepvldSchema
from hepvld.processor import UnfoldingProcessor


def _events(path: Path, schema: type) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events = NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=schema, mode="eager"
        ).events()
        assert len(events) > 0 and "Jet" in events.fields
    return [str(w.message) for w in caught if "cross-reference" in str(w.message)]


def test_the_plain_schema_warns_and_ours_does_not(tiny_root_file: Path) -> None:
    assert len(_events(tiny_root_file, NanoAODSchema)) > 10  # what users saw per chunk
    assert _events(tiny_root_file, HepvldSchema) == []


def test_futures_workers_print_no_crossref_warnings(
    tiny_run_dir: Path, tiny_root_file: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    proc = UnfoldingProcessor(
        str(tiny_run_dir), ["t_had_pt"], n_samples=2, sampler="ddim", steps=2, seed=0
    )
    runner = processor.Runner(
        executor=processor.FuturesExecutor(workers=2, status=False),
        schema=HepvldSchema,
        chunksize=100,
    )
    out = runner({"tt": [str(tiny_root_file)]}, proc, treename="Events")
    assert out["tt"]["unfolded"]["t_had_pt"].sum().value > 0
    captured = capfd.readouterr()
    assert "cross-reference" not in captured.err + captured.out
