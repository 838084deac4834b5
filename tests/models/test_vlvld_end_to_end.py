"""VL-VLD end to end on the real ``particle`` level: ROOT file -> ``python -m hepvld.train
--model vl-vld`` -> checkpoint (level recorded) -> resume -> ``hepvld.load`` /
``hepvld.unfold`` (jagged records, reproducible per event); its export is tested in
tests/test_export_vlvld.py."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

import hepvld
from hepvld.cli.train import main as train_main
from hepvld.io import open_events
from hepvld.training.checkpoint import load_checkpoint

TRAIN_ARGS = [
    "--model",
    "vl-vld",
    "--preset",
    "tiny",
    "--train.batch-size",
    "64",
    "--train.warmup-steps",
    "2",
    "--train.device",
    "cpu",
    "--model.vlvld-latent-dim",
    "4",
]


@pytest.fixture(scope="module")
def vlvld_run(tiny_root_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "vl-vld"
    rc = train_main(
        [str(tiny_root_file), "--run-dir", str(run_dir), "--train.epochs", "2", *TRAIN_ARGS]
    )
    assert rc == 0
    return run_dir


def test_the_checkpoint_records_the_particle_level(vlvld_run: Path) -> None:
    extra = load_checkpoint(vlvld_run).meta["extra"]
    assert extra["model"] == "vl-vld"
    assert extra["target_level"] == "particle"
    assert extra["target_options"]["max_objects"] == 16
    model = hepvld.load(vlvld_run)
    assert model.level.name == "particle"
    assert model.model.noise_shape == (18, 4)


def test_resume_continues_the_run(tiny_root_file: Path, tmp_path: Path) -> None:
    run = tmp_path / "split"
    common = [str(tiny_root_file), "--run-dir", str(run), "--train.epochs", "2", *TRAIN_ARGS]
    assert train_main([*common, "--train.max-time", "1e-9"]) == 0
    first = load_checkpoint(run).meta["step"]
    assert train_main([*common, "--resume"]) == 0
    assert load_checkpoint(run).meta["step"] > first > 0


def test_unfold_returns_jagged_draws_reproducible_per_event(
    tiny_root_file: Path, vlvld_run: Path
) -> None:
    events = open_events(tiny_root_file)[:40]
    model = hepvld.load(vlvld_run)
    out = hepvld.unfold(events, model=model, n_samples=3, steps=3, seed=5)
    assert len(out) == 40
    sel = out[~ak.is_none(out, axis=0)]
    assert ak.fields(sel) == ["objects", "event"]
    n = ak.to_numpy(ak.num(sel["objects"], axis=-1))
    assert n.shape == (len(sel), 3) and (n >= 0).all() and (n <= 16).all()
    types = ak.to_numpy(ak.flatten(sel["objects"]["type"], axis=None))
    assert set(np.unique(types)) <= {0, 1, 2, 3}
    assert np.isfinite(ak.to_numpy(ak.flatten(sel["objects"].px, axis=None))).all()
    # the same events in another chunk and batch size: the same draws
    again = hepvld.unfold(events[10:30], model=model, n_samples=3, steps=3, seed=5, batch_size=7)
    a = ak.flatten(out[10:30]["objects"].px, axis=None)
    b = ak.flatten(again["objects"].px, axis=None)
    assert ak.to_list(ak.num(out[10:30]["objects"], axis=-1)) == ak.to_list(
        ak.num(again["objects"], axis=-1)
    )
    np.testing.assert_allclose(ak.to_numpy(a), ak.to_numpy(b), rtol=1e-4, atol=1e-3)
