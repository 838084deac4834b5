"""Unfold output: atomic write, completeness marker with the cut-flow, finite draws only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepvld.io import NonFiniteDrawError
from hepvld.io.output import COMPLETE_KEY, check_finite_draws, write_tree_atomic


def test_unfold_cli_output_has_marker_and_cutflow(
    toy_run: Path, good_file: Path, tmp_path: Path
) -> None:
    from hepvld.cli.unfold import main

    out = tmp_path / "out.root"
    argv = [str(good_file), "-c", str(toy_run), "-o", str(out), "-S", "2", "--steps", "2"]
    assert main([*argv, "--sampler", "ddim", "--on-nonfinite", "drop"]) == 0
    with uproot.open(out) as f:
        marker = json.loads(f[COMPLETE_KEY])
        n = f["Unfolded"].num_entries
    assert marker["complete"] is True and marker["events"] == n
    assert marker["cutflow"]["counts"][0] == 200 and marker["cutflow"]["counts"][-1] == n
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.root"
    out.write_bytes(b"previous result")

    def boom(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(uproot.writing.writable.WritableTree, "extend", boom)
    with pytest.raises(KeyboardInterrupt):
        write_tree_atomic(out, "Unfolded", {"x": np.arange(3.0)})
    assert out.read_bytes() == b"previous result"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.root"]


_KILLED_WRITE = """
import sys, time, numpy as np, uproot
from hepvld.io.output import write_tree_atomic
real = uproot.writing.writable.WritableTree.extend
def slow(self, data):
    real(self, data)
    open(sys.argv[2], "w").close()
    time.sleep(60)
uproot.writing.writable.WritableTree.extend = slow
write_tree_atomic(sys.argv[1], "Unfolded", {"x": np.arange(1000.0)})
"""


def test_sigkill_during_write_never_leaves_a_complete_looking_file(tmp_path: Path) -> None:
    out, flag = tmp_path / "out.root", tmp_path / "flag"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITE, str(out), str(flag)])
    t0 = time.monotonic()
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() - t0 < 60
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".out.root.")


def test_finite_check_names_events() -> None:
    draws = np.zeros((4, 2, 3))
    draws[2, 1, 0] = np.inf
    with pytest.raises(NonFiniteDrawError, match=r"for 1 of 4 events \(event numbers 12\)"):
        check_finite_draws(draws, np.array([10, 11, 12, 13]))
    check_finite_draws(np.zeros((0, 2, 3)))


def test_streaming_does_not_depend_on_chunk_size(
    toy_run: Path, good_file: Path, tmp_path: Path
) -> None:
    import hepvld
    from hepvld.io.unfolded import unfold_files
    from hepvld.testing.synthetic import toy_events, write_root

    model = hepvld.load(toy_run)
    fast = {"n_samples": 2, "steps": 2, "sampler": "ddim"}
    arrays = []
    for chunk in (37, 10_000):
        out = tmp_path / f"c{chunk}.root"
        n, cutflow = unfold_files([good_file], out, model=model, chunk_events=chunk, **fast)
        assert cutflow.total == 200 and n == cutflow.passed
        with uproot.open(out) as f:
            arrays.append(f["Unfolded"].arrays())
            assert json.loads(f[COMPLETE_KEY])["cutflow"]["counts"] == cutflow.counts
    assert arrays[0].fields == arrays[1].fields
    assert ak.array_equal(arrays[0]["event"], arrays[1]["event"])
    for field in arrays[0].fields:
        # same noise per event; only the GEMM blocking of other batch sizes differs
        np.testing.assert_allclose(
            ak.to_numpy(ak.flatten(arrays[0][field], axis=None)),
            ak.to_numpy(ak.flatten(arrays[1][field], axis=None)),
            rtol=1e-4,
            atol=1e-3,
            err_msg=field,
        )

    empty = tmp_path / "zero.root"
    write_root(str(empty), toy_events(0))
    n, cutflow = unfold_files([empty], tmp_path / "z.root", model=model, **fast)
    assert n == 0 and cutflow.total == 0
    with uproot.open(tmp_path / "z.root") as f:
        assert f["Unfolded"].num_entries == 0 and json.loads(f[COMPLETE_KEY])["complete"]
