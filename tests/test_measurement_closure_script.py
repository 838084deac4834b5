"""analysis/measurement_closure.py runs end to end on tiny files (plumbing, not physics)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_closure_script_runs(tiny_root_file: Path, tiny_run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("pythia8mc")
    from hepvld.cli.unfold import main as unfold
    from hepvld.generate import generate

    mixed = tmp_path / "mixed.root"
    generate(mixed, 300, seed=9, mpi=False, count="generated", select=False, progress=False)
    h5 = tmp_path / "tiny.h5"
    opts = ["-S", "2", "--steps", "2", "--replicas", "10"]
    assert (
        unfold(
            [str(tiny_root_file), "-c", str(tiny_run_dir), "-o", str(h5), "--format", "hdf5", *opts]
        )
        == 0
    )
    spec = importlib.util.spec_from_file_location(
        "mc", ROOT / "analysis" / "measurement_closure.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    argv = [
        "-c",
        str(tiny_run_dir),
        "--noselect",
        str(mixed),
        "-S",
        "2",
        "--steps",
        "2",
        "-o",
        str(out),
    ]
    argv += ["--signal", str(tiny_root_file), str(h5), "--background", str(tiny_root_file), str(h5)]
    assert mod.main(argv) == 0
    res = json.loads((out / "closure.json").read_text())
    acc = res["acceptance"]
    assert acc["generated"] == 300 and 0 < acc["selected"] < 300
    assert 0 <= acc["fake_rates"]["unfolded"] <= 1 and 0 <= acc["fake_rates"]["true"] <= 1
    assert set(res["backgrounds"]["t_had_pt"]) == {"after", "before", "no_subtraction"}
    assert (out / "background_t_had_pt.png").exists() and (
        out / "acceptance_t_had_mass.png"
    ).exists()
