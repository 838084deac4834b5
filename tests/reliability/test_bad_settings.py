"""Bad-input corpus, part 3: settings, command-line values and the unfold API
(docs/reliability.md, rows S* and U*)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from conftest import set_flat

import hepvld
from hepvld.io import DuplicateEventError, NonFiniteDrawError, NonFiniteError, UnsupportedInputError
from hepvld.testing.synthetic import toy_events, write_root

FAST = {"n_samples": 2, "steps": 2, "sampler": "ddim"}


def _fails(capsys: pytest.CaptureFixture[str], main, argv: list[str], pattern: str) -> None:
    """The CLI exits non-zero with one message on stderr that matches ``pattern``."""
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own usage errors
        code = exit.code
    assert code not in (0, None)
    err = capsys.readouterr().err
    assert re.search(pattern, err), err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def model(toy_run: Path):
    return hepvld.load(toy_run)


# ------------------------------------------------------------------ TOML and CLI (S)
def test_s01_toml_unknown_key(
    good_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hepvld.train import main

    toml = tmp_path / "c.toml"
    toml.write_text("[train]\nlrr = 0.1\n")
    _fails(
        capsys,
        main,
        [str(good_file), "--config", str(toml), "--dry-run"],
        r"unknown key TrainConfig\.lrr; did you mean 'lr'\?",
    )


def test_s02_toml_wrong_type(
    good_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hepvld.train import main

    toml = tmp_path / "c.toml"
    toml.write_text('[train]\nbatch_size = "big"\n')
    _fails(
        capsys,
        main,
        [str(good_file), "--config", str(toml), "--dry-run"],
        r"TrainConfig\.batch_size must be an integer, got 'big'",
    )


def test_s03_toml_unknown_table(
    good_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hepvld.train import main

    toml = tmp_path / "c.toml"
    toml.write_text("[trian]\nlr = 0.1\n")
    _fails(
        capsys,
        main,
        [str(good_file), "--config", str(toml), "--dry-run"],
        r"unknown TOML tables \['trian'\]; use \[train\]",
    )


def test_s04_train_batch_size_zero(good_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hepvld.train import main

    _fails(
        capsys,
        main,
        [str(good_file), "--train.batch-size", "0", "--dry-run"],
        r"TrainConfig\.batch_size must be >= 1, got 0",
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["-S", "0"], r"n_samples must be >= 1, got 0"),
        (["--steps", "-3"], r"steps must be a positive integer, got -3"),
        (["--sampler", "euler"], r"invalid choice: 'euler' \(choose from 'ddim'"),
        (["--batch-size", "0"], r"batch_size must be >= 1, got 0"),
    ],
)
def test_s05_unfold_cli_values_out_of_range(
    toy_run: Path,
    good_file: Path,
    tmp_path: Path,
    option: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hepvld.cli.unfold import main

    out = tmp_path / "out.root"
    _fails(capsys, main, [str(good_file), "-c", str(toy_run), "-o", str(out), *option], message)
    assert not out.exists()


def test_s06_generate_cli_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hepvld.generate.__main__ import main

    _fails(
        capsys, main, ["-n", "0", "-o", str(tmp_path / "g.root")], r"n_events must be >= 1, got 0"
    )


# ------------------------------------------------------------------- unfold API (U)
def test_u01_flat_uproot_arrays_match_the_path(model, good_file: Path) -> None:
    with uproot.open(good_file) as f:
        flat = f["Events"].arrays(entry_stop=40)
        as_dict = f["Events"].arrays(entry_stop=40, how=dict)
    ref = hepvld.unfold(good_file, model=model, entry_stop=40, raw=True, **FAST)
    assert len(ref) == 40
    for source in (flat, as_dict):
        got = hepvld.unfold(source, model=model, raw=True, **FAST)
        assert ak.to_list(ak.is_none(got)) == ak.to_list(ak.is_none(ref))
        np.testing.assert_array_equal(
            ak.to_numpy(ak.flatten(ak.drop_none(got).raw, axis=None)),
            ak.to_numpy(ak.flatten(ak.drop_none(ref).raw, axis=None)),
        )


def test_u02_unsupported_type_named(model) -> None:
    with pytest.raises(UnsupportedInputError, match=r"cannot read events from a builtins\.int"):
        hepvld.unfold(3, model=model, **FAST)
    with pytest.raises(UnsupportedInputError, match=r"numpy\.ndarray"):
        hepvld.unfold(np.zeros((3, 4)), model=model, **FAST)


def test_u03_zero_events(model) -> None:
    out = hepvld.unfold(toy_events(0), model=model, **FAST)
    assert len(out) == 0 and out.attrs["cutflow"].total == 0


def test_u04_zero_events_after_selection(model, caplog) -> None:
    ev = toy_events(30, seed=2, decay="allhadronic")
    ev = ak.with_field(ev, ev.Electron[:, :0], "Electron")
    ev = ak.with_field(ev, ev.Muon[:, :0], "Muon")
    with caplog.at_level(logging.WARNING, logger="hepvld"):
        out = hepvld.unfold(ev, model=model, **FAST)
    assert len(out) == 30 and ak.all(ak.is_none(out))
    assert "none of the 30 events passes the selection" in caplog.text
    assert out.attrs["cutflow"].total == 30


def test_u05_one_event(model, good_events: ak.Array) -> None:
    mask, _ = hepvld.features.select(good_events)
    one = good_events[np.flatnonzero(mask)[:1]]
    out = hepvld.unfold(one, model=model, raw=True, **FAST)
    assert len(out) == 1 and np.isfinite(ak.to_numpy(out.raw[0])).all()


def test_u06_nonfinite_input_policy(model, good_events: ak.Array) -> None:
    ev = set_flat(good_events, "Jet", "pt", lambda flat: flat.__setitem__(5, np.nan))
    with pytest.raises(NonFiniteError, match=r"'Jet_pt' has 1 NaN/inf.*on_nonfinite='drop'"):
        hepvld.unfold(ev, model=model, **FAST)
    out = hepvld.unfold(ev, model=model, on_nonfinite="drop", **FAST)
    assert len(out) == 199  # one entry per *kept* input event; the drop is logged


def test_u07_huge_values_never_reach_the_model(model, good_events: ak.Array) -> None:
    ev = set_flat(good_events, "Jet", "pt", lambda flat: flat.__setitem__(0, 1e30))
    with pytest.raises(hepvld.io.InvalidValueError, match=r"'Jet_pt' has 1 above 100000 GeV"):
        hepvld.unfold(ev, model=model, **FAST)


def test_u08_nonfinite_draws_are_refused(model, good_events: ak.Array, monkeypatch) -> None:
    import torch

    real = model.model.sample

    def broken(*args, **kwargs):
        out = real(*args, **kwargs)
        out.values[0, 0, 3] = torch.nan
        return out

    monkeypatch.setattr(model.model, "sample", broken)
    with pytest.raises(
        NonFiniteDrawError,
        match=r"NaN/inf posterior draws for 1 of \d+ events \(event numbers \d+\)",
    ):
        hepvld.unfold(good_events, model=model, **FAST)


def test_u09_duplicate_event_numbers(model, good_events: ak.Array) -> None:
    numbers = ak.to_numpy(good_events.event).copy()
    numbers[:] = 7
    ev = ak.with_field(good_events, numbers, "event")
    with pytest.raises(DuplicateEventError, match=r"occur more than once \(e\.g\. 7\)"):
        hepvld.unfold(ev, model=model, **FAST)
    out = hepvld.unfold(ev, model=model, on_duplicate="warn", **FAST)
    assert len(out) == len(ev)


def test_u10_entry_range_on_paths(model, good_file: Path, tmp_path: Path) -> None:
    second = tmp_path / "second.root"
    write_root(str(second), toy_events(50, seed=9, first_event=10_000))
    out = hepvld.unfold([good_file, second], model=model, entry_start=190, entry_stop=215, **FAST)
    assert len(out) == 25
