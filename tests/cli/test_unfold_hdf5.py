"""``python -m hepvld.unfold --format hdf5``: the unbinned result of a real (tiny) model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hepvld.cli.unfold import main
from hepvld.io.unbinned import checkpoint_sha256, closure, read_unbinned


def test_unfold_writes_the_unbinned_format(
    tiny_root_file: Path, tiny_run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "u.h5"
    argv = [str(tiny_root_file), "-c", str(tiny_run_dir), "-o", str(out), "--format", "hdf5"]
    rc = main([*argv, "-S", "3", "--steps", "2", "--replicas", "7", "--max-events", "80"])
    assert rc == 0
    res = read_unbinned(out)
    b = len(res)
    assert 0 < b <= 80 and res.values.shape == (b, 3, 11, 5) and res.bootstrap.shape == (b, 7)
    assert np.isfinite(res.values).all()
    assert res.truth_values is not None and np.isfinite(res.truth_values).all()
    meta = res.meta
    assert meta["checkpoint_sha256"] == checkpoint_sha256(tiny_run_dir)
    assert meta["n_samples"] == 3 and meta["target_level"] == "parton"
    assert meta["training_files"] == [str(tiny_root_file)]
    assert meta["cutflow"]["counts"][-1] == b and meta["cutflow"]["counts"][0] == 80
    # any observable re-derived; the closure machinery runs on it
    m = res.observable(lambda r: r.t_had.mass)
    t = res.observable(lambda r: r.t_had.mass, truth=True)
    assert m.shape == (b, 3) and t.shape == (b,)
    c = closure(res.histogram(m, np.linspace(0, 400, 9)), t)
    assert c.ndf > 0 and np.isfinite(c.chi2)


def test_resume_is_refused_for_the_unbinned_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "u.h5"
    argv = ["in.root", "-c", str(tmp_path / "no-run"), "-o", str(out), "--format", "hdf5"]
    assert main([*argv, "--resume"]) == 1
    err = capsys.readouterr().err
    assert "--resume" in err and "--format hdf5" in err and "Traceback" not in err
    assert not out.exists()
