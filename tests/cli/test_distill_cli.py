"""``hepvld distill`` end to end: train a tiny run, distil it, unfold with the student."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hepvld.cli import distill, train, unfold
from hepvld.testing.synthetic import toy_events, write_root


@pytest.mark.slow  # three CLI runs (training, distillation, unfolding): ~1 min here
def test_distill_then_unfold_with_the_student(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "toy.root"
    write_root(str(data), toy_events(1500, seed=5))
    run = tmp_path / "run"
    assert (
        train.main(
            [
                str(data),
                "-o",
                str(run),
                "--model",
                "c-vld",
                "--preset",
                "tiny",
                "--train.max-steps",
                "20",
                "--train.batch-size",
                "64",
                "--train.warmup-steps",
                "2",
                "--train.device",
                "cpu",
            ]
        )
        == 0
    )
    argv = [str(run), "--steps", "2", "--teacher-steps", "8", "--steps-per-round", "10"]
    assert distill.main([*argv, "--batch-size", "64", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "| 1 | 8 → 4 | 10 |" in printed and "| 2 | 4 → 2 | 10 |" in printed
    meta = json.loads((run / "distilled" / "steps-2.json").read_text())
    assert meta["grid"] == [1.0, 0.5, 0.0] and len(meta["rounds"]) == 2
    assert meta["teacher"]["checkpoint"] == "checkpoints/step_00000020"

    out = tmp_path / "a.root"
    common = ["-c", str(run), "--sampler", "distilled", "--steps", "2", "-S", "2"]
    assert unfold.main([str(data), "-o", str(out), *common]) == 0
    again = tmp_path / "b.root"
    assert unfold.main([str(data), "-o", str(again), *common, "--batch-size", "7"]) == 0
    import uproot

    with uproot.open(out) as a, uproot.open(again) as b:
        x = a["Unfolded"].arrays(library="np")
        y = b["Unfolded"].arrays(library="np")
    assert x.keys() == y.keys()
    for key in x:  # reproducible per (seed, event) whatever the batching
        np.testing.assert_allclose(np.stack(x[key]), np.stack(y[key]), rtol=1e-4, atol=1e-4)

    capsys.readouterr()
    missing = ["-c", str(run), "--sampler", "distilled", "--steps", "8"]
    assert unfold.main([str(data), "-o", str(tmp_path / "c.root"), *missing]) == 1
    err = capsys.readouterr().err
    assert "distilled/steps-8.json" in err and "available: 2, 4 steps" in err
