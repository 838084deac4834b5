"""VL-VLD trained with ``--target.neutrino w_mass``: the option is recorded, a resume with
another is refused, and the draws' neutrinos are decoded from the drawn lepton–neutrino
mass (massless, built on each draw's own lepton)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

import hepvld
from hepvld.cli._common import CLIError
from hepvld.cli.train import main as train_main
from hepvld.io import open_events
from hepvld.training.checkpoint import load_checkpoint

ARGS = [
    "--model", "vl-vld", "--preset", "tiny", "--train.batch-size", "64",
    "--train.warmup-steps", "2", "--train.device", "cpu", "--model.vlvld-latent-dim", "4",
    "--train.epochs", "2", "--target.neutrino", "w_mass",
]  # fmt: skip


@pytest.fixture(scope="module")
def run(tiny_root_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "vl-vld-wmass"
    assert train_main([str(tiny_root_file), "--run-dir", str(run_dir), *ARGS]) == 0
    return run_dir


def test_option_recorded_and_resume_checked(run: Path, tiny_root_file: Path) -> None:
    extra = load_checkpoint(run).meta["extra"]
    assert extra["target_options"]["neutrino"] == "w_mass"
    assert extra["target_preprocessor"]["neutrino"] == "w_mass"
    assert hepvld.load(run).level.neutrino == "w_mass"
    argv = [str(tiny_root_file), "--run-dir", str(run), *ARGS[:-1], "cartesian", "--resume"]
    with pytest.raises((CLIError, SystemExit)):
        if train_main(argv) != 0:
            raise SystemExit(2)


def test_draws_have_massless_neutrinos_on_their_own_lepton(run: Path, tiny_root_file: Path) -> None:
    events = open_events(tiny_root_file)[:40]
    out = hepvld.unfold(events, model=hepvld.load(run), n_samples=3, steps=3, seed=1)
    sel = out[~ak.is_none(out, axis=0)]
    nu = sel["event"]["nu"]
    e = ak.to_numpy(ak.flatten(nu.E, axis=None))
    p2 = ak.to_numpy(ak.flatten(nu.px**2 + nu.py**2 + nu.pz**2, axis=None))
    assert len(e) > 0 and np.isfinite(e).all()
    np.testing.assert_allclose(e**2, p2, rtol=1e-4)
    # W_lep built from a draw's single lepton and its neutrino: finite
    objects, nus = ak.flatten(sel["objects"], axis=1), ak.flatten(nu, axis=1)
    leptons = objects[objects["type"] >= 2]
    one = ak.num(leptons, axis=-1) == 1
    w = (leptons[one][:, 0] + nus[one]).mass
    assert np.isfinite(ak.to_numpy(w)).all()
