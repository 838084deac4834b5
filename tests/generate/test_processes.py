"""The generator's process option: backgrounds with the same detector and selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepvld.generate.config import PROCESSES, GeneratorSettings


def test_process_is_validated() -> None:
    assert PROCESSES == ("ttbar", "single-top", "wjets")
    with pytest.raises(ValueError, match="process"):
        GeneratorSettings(process="zjets")


def test_pythia_settings_per_process() -> None:
    pytest.importorskip("pythia8mc")
    from hepvld.generate.pythia import pythia_settings

    def lines(process: str) -> list[str]:
        return pythia_settings(GeneratorSettings(process=process), seed=3, leptonic_charge=1)

    assert "Top:gg2ttbar = on" in lines("ttbar")
    st = lines("single-top")
    assert "Top:qq2tq(t:W) = on" in st and "Top:gg2ttbar = on" not in st
    assert "24:onIfAny = 11 13" in st
    wj = lines("wjets")
    assert "WeakBosonAndParton:qg2Wq = on" in wj and not any("Top:" in s for s in wj)


def test_single_top_events_skip_the_ttbar_chain_cut(tmp_path: Path) -> None:
    pytest.importorskip("pythia8mc")
    from hepvld.generate import generate
    from hepvld.io import open_events

    out = tmp_path / "st.root"
    s = generate(out, 200, seed=2, count="generated", process="single-top", select=False, mpi=False)
    cf = s.cutflow
    assert cf["semi-leptonic tt̄ chain"] == cf["generated"] == 200  # not required
    assert cf["exactly 1 isolated e/μ"] < 200
    events = open_events(str(out))
    assert len(events) == 200  # --no-select writes every event
    assert "GenPart" in events.fields
