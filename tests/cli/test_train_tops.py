"""``hepvld train --tops after_isr``: the parton level's tops after ISR, recorded in the
checkpoint; files without the last top copies get one clear message naming them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepvld.testing.synthetic import toy_events, write_root

TINY = [
    "--preset",
    "tiny",
    "--train.epochs",
    "1",
    "--train.batch-size",
    "64",
    "--train.warmup-steps",
    "2",
    "--train.device",
    "cpu",
]


def test_old_file_is_refused_with_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hepvld.cli.train import main

    old = tmp_path / "hard_only.root"
    write_root(str(old), toy_events(300, seed=4))  # GenPart: the hard process only
    rc = main([str(old), "--run-dir", str(tmp_path / "run"), "--tops", "after_isr", *TINY])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "hard_only.root" in err and "last copies of the tops" in err
    assert "python -m hepvld.generate" in err


def test_after_isr_is_recorded_and_loaded(
    tiny_root_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hepvld
    from hepvld.cli.train import main
    from hepvld.training.checkpoint import load_checkpoint

    run = tmp_path / "run"
    assert main([str(tiny_root_file), "--run-dir", str(run), "--tops", "after_isr", *TINY]) == 0
    extra = load_checkpoint(run).meta["extra"]
    options = {"parameterisation": "decay", "tops": "after_isr"}  # decay: a new run's default
    assert extra["target_level"] == "parton" and extra["target_options"] == options
    assert hepvld.load(run).level.tops == "after_isr"
    capsys.readouterr()
    rc = main([str(tiny_root_file), "--run-dir", str(run), "--resume", "--tops", "hard", *TINY])
    assert rc == 1 and f"trained with target options {options}" in capsys.readouterr().err
