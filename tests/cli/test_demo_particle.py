"""``hepvld demo --level particle`` end to end, small (generate, train VL-VLD, unfold, write,
evaluate). Slow: a minute at one thread; run by hand or in the slow suite."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("hepvld.models.vlvld")


@pytest.mark.slow
def test_particle_demo_runs_the_whole_chain(
    tiny_root_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import uproot

    from hepvld.demo import main

    out = tmp_path / "demo"
    out.mkdir()
    shutil.copy(tiny_root_file, out / "ttbar.root")  # the demo reuses an existing sample
    argv = ["--level", "particle", "--output", str(out), "--train-steps", "10"]
    argv += ["--n-samples", "4", "--steps", "2", "--preset", "tiny"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "hepvld particle-level demo summary" in printed and "t_had" in printed
    assert (out / "report-particle" / "report.html").is_file()
    tree = uproot.open(out / "unfolded-particle.root")["Unfolded"]
    assert {"Draw_nObject", "Object_pt", "Object_type"} <= set(tree.keys())
