"""ROOT file -> train CLI -> checkpoint -> resume -> hepvld.unfold / unfold CLI."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import hepvld
from hepvld.cli.train import main as train_main
from hepvld.cli.unfold import main as unfold_main
from hepvld.io import open_events
from hepvld.physics import PARTONS, TARGET_DIM
from hepvld.training.checkpoint import load_checkpoint

TRAIN_ARGS = [
    "--preset",
    "tiny",
    "--train.batch-size",
    "64",
    "--train.warmup-steps",
    "2",
    "--train.device",
    "cpu",
]


def test_dry_run_resolves_preset_toml_and_cli(
    tiny_root_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "cfg.toml"
    toml.write_text("[train]\nlr = 1e-3\nbatch_size = 32\n[model]\ndenoiser_blocks = 3\n")
    rc = train_main(
        [
            str(tiny_root_file),
            "--preset",
            "small",
            "--config",
            str(toml),
            "--train.batch-size",
            "16",
            "--model",
            "uc-vld",
            "--dry-run",
        ]
    )
    assert rc == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["train"]["lr"] == 1e-3  # from TOML
    assert resolved["train"]["batch_size"] == 16  # CLI beats TOML
    assert resolved["model_config"]["denoiser_blocks"] == 3  # TOML beats preset
    assert resolved["model_config"]["dim"] == 64  # from the small preset
    assert resolved["model_config"]["variant"] == "uc-vld"


def test_unknown_toml_key_is_named(
    tiny_root_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "cfg.toml"
    toml.write_text("[train]\nlearning_rate = 1e-3\n")
    assert train_main([str(tiny_root_file), "--config", str(toml), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "learning_rate" in err and "Traceback" not in err


def test_resumed_cli_run_matches_an_uninterrupted_one(tiny_root_file: Path, tmp_path: Path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    rc = train_main(
        [str(tiny_root_file), "--run-dir", str(straight), "--train.epochs", "2", *TRAIN_ARGS]
    )
    assert rc == 0
    # A run cut short by its wall-clock budget (checkpoint after its first step), as a
    # killed batch job would be, then continued with --resume.
    rc = train_main(
        [
            str(tiny_root_file),
            "--run-dir",
            str(split),
            "--train.epochs",
            "2",
            "--train.max-time",
            "1e-9",
            *TRAIN_ARGS,
        ]
    )
    assert rc == 0
    assert 0 < load_checkpoint(split).meta["step"] < load_checkpoint(straight).meta["step"]
    rc = train_main(
        [
            str(tiny_root_file),
            "--run-dir",
            str(split),
            "--train.epochs",
            "2",
            "--resume",
            *TRAIN_ARGS,
        ]
    )
    assert rc == 0
    a, b = load_checkpoint(straight), load_checkpoint(split)
    assert a.meta["step"] == b.meta["step"] > 0
    for key, value in a.model_state.items():
        assert np.array_equal(value.numpy(), b.model_state[key].numpy()), key
    assert a.meta["extra"]["target_preprocessor"] == b.meta["extra"]["target_preprocessor"]


def test_unfold_shapes_physics_fields_and_raw(tiny_root_file: Path, tiny_run_dir: Path) -> None:
    events = open_events(tiny_root_file)[:40]
    model = hepvld.load(tiny_run_dir)
    out = hepvld.unfold(events, model=model, n_samples=3, steps=4, raw=True, seed=7)
    assert len(out) == 40
    assert ak.fields(out) == [*PARTONS, "raw"]
    assert ak.to_numpy(out.raw).shape == (40, 3, TARGET_DIM)
    mass = ak.to_numpy(out.t_had.mass)
    assert mass.shape == (40, 3) and np.isfinite(mass).all()
    # the composite is returned as regressed, so t_had.pt is a vector property that works
    assert np.isfinite(ak.to_numpy(out.ttbar.pt)).all()


@pytest.mark.parametrize("sampler", ["dpmpp2m", "ddpm"])
def test_unfold_is_independent_of_chunking_and_batch_size(
    sampler: str, tiny_root_file: Path, tiny_run_dir: Path
) -> None:
    """Every sampler, the stochastic ddpm included (its per-step noise is keyed per event)."""
    events = open_events(tiny_root_file)[:30]
    model = hepvld.load(tiny_run_dir)
    kwargs = dict(model=model, n_samples=2, steps=3, sampler=sampler, raw=True, seed=11)
    whole = ak.to_numpy(hepvld.unfold(events, batch_size=7, **kwargs).raw)
    parts = [
        ak.to_numpy(hepvld.unfold(events[s], batch_size=64, **kwargs).raw)
        for s in (slice(0, 13), slice(13, 30))
    ]
    # Same draws up to float32 rounding: BLAS sums in a batch-size dependent order, and the
    # sampler's 1/alpha_t at the first steps magnifies that (seen: 2e-4 relative on GeV values).
    np.testing.assert_allclose(whole, np.concatenate(parts), rtol=1e-3, atol=1e-3)
    other_seed = ak.to_numpy(hepvld.unfold(events, batch_size=7, **{**kwargs, "seed": 12}).raw)
    assert not np.allclose(whole, other_seed)


def test_unfold_marks_events_failing_the_selection(tmp_path: Path, tiny_run_dir: Path) -> None:
    pytest.importorskip("pythia8mc")
    from hepvld.generate import generate

    path = tmp_path / "unselected.root"
    generate(path, 60, count="generated", seed=2, mpi=False, select=False, progress=False)
    events = open_events(path)
    out = hepvld.unfold(events, model=tiny_run_dir, n_samples=2, steps=2)
    cutflow = out.attrs["cutflow"]
    failed = ak.to_numpy(ak.is_none(out, axis=0))
    assert len(out) == len(events) == 60
    assert 0 < failed.sum() < 60
    assert cutflow.total == 60 and cutflow.passed == 60 - failed.sum()


def test_unfold_empty_input(tiny_root_file: Path, tiny_run_dir: Path) -> None:
    out = hepvld.unfold(open_events(tiny_root_file)[:0], model=tiny_run_dir, n_samples=2, steps=2)
    assert len(out) == 0
    assert ak.fields(out) == list(PARTONS)


def test_unfold_cli_writes_a_ttree(
    tiny_root_file: Path, tiny_run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "unfolded.root"
    rc = unfold_main(
        [
            str(tiny_root_file),
            "-c",
            str(tiny_run_dir),
            "-o",
            str(out),
            "-S",
            "3",
            "--steps",
            "2",
            "--max-events",
            "25",
        ]
    )
    assert rc == 0
    with uproot.open(out) as f:
        tree = f["Unfolded"]
        assert tree.classname == "TTree"
        assert tree.num_entries == 25
        counts = tree["nDraw"].array(library="np")
        assert (counts == 3).all()
        assert np.isfinite(ak.to_numpy(ak.flatten(tree["Draw_t_had_mass"].array()))).all()
