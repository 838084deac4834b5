"""Resuming is exact; a killed run leaves a loadable checkpoint; nothing is pickled."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest
import torch
from toy_training_model import toy_data, toy_model

from hepvld.config import TrainConfig
from hepvld.training import checkpoint as checkpoint_module
from hepvld.training import load_checkpoint, load_model, save_checkpoint, train

CONFIG = TrainConfig(
    lr=1e-2,
    min_lr=1e-4,
    warmup_steps=3,
    max_steps=14,
    batch_size=16,
    checkpoint_every=6,
    log_every=2,
    ema_decay=0.9,
    device="cpu",
    seed=1,
    keep_checkpoints=5,
)


def _run(run_dir: Path, *, fail_at: int | None = None, resume: bool = False, init_seed: int = 0):
    model = toy_model(init_seed, fail_at=fail_at)
    return train(
        model,
        toy_data(72),
        toy_data(40, seed=1),
        CONFIG,
        run_dir,
        extra_state={"model": "toy"},
        resume=resume,
    )


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_continues_bit_for_bit(tmp_path: Path) -> None:
    straight = _run(tmp_path / "straight")

    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path / "killed", fail_at=9)  # dies mid-epoch 2, after the step-6 checkpoint
    assert load_checkpoint(tmp_path / "killed").step == 6
    resumed = _run(tmp_path / "killed", resume=True, init_seed=123)  # fresh weights get replaced

    assert resumed.step == straight.step == 14
    _assert_same_state(straight.model.state_dict(), resumed.model.state_dict())
    _assert_same_state(straight.ema_model.state_dict(), resumed.ema_model.state_dict())
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "killed")
    for pa, pb in zip(a.optimizer_state["state"].values(), b.optimizer_state["state"].values()):
        _assert_same_state(pa, pb)
    assert a.scheduler_state == b.scheduler_state
    _assert_same_state(a.rng_state, b.rng_state)
    # the metric rows written by the killed run after its checkpoint are replaced
    straight_csv = (tmp_path / "straight" / "metrics.csv").read_text()
    assert (tmp_path / "killed" / "metrics.csv").read_text() == straight_csv


def test_killed_run_leaves_loadable_checkpoint_and_never_unpickles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n_handlers = len(logging.getLogger("hepvld").handlers)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path, fail_at=8)
    assert len(logging.getLogger("hepvld").handlers) == n_handlers  # file handler removed

    files = [p for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()]
    assert files and all(p.suffix in (".safetensors", ".json") for p in files), files
    assert not any(p.name.startswith(".") for p in (tmp_path / "checkpoints").iterdir())
    for p in files:
        if p.suffix == ".safetensors":  # u64 header length, then a JSON header
            raw = p.read_bytes()
            header = int.from_bytes(raw[:8], "little")
            json.loads(raw[8 : 8 + header])

    def no_unpickling(*args, **kwargs):
        raise AssertionError("checkpoint loading must not unpickle")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "Unpickler", no_unpickling)
    monkeypatch.setattr(torch, "load", no_unpickling)
    model, ckpt = load_model(tmp_path, lambda meta: toy_model(5))
    assert ckpt.step == 6 and ckpt.meta["extra"] == {"model": "toy"}
    assert ckpt.meta["config"]["lr"] == CONFIG.lr
    assert not model.training
    _assert_same_state(model.state_dict(), ckpt.ema_state)


def test_interrupted_save_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = toy_model()
    first = save_checkpoint(tmp_path, model, step=1, epoch=0)
    original = checkpoint_module._save_tensors

    def crash_on_state(path: Path, tensors: dict) -> None:
        if path.name == "state.safetensors":
            raise KeyboardInterrupt  # killed while writing
        original(path, tensors)

    monkeypatch.setattr(checkpoint_module, "_save_tensors", crash_on_state)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, model, step=2, epoch=0)
    assert load_checkpoint(tmp_path).path == first
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "latest.json",
        "step_00000001",
    ]


def test_optimizer_state_round_trip(tmp_path: Path) -> None:
    model = toy_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.9))
    model.loss(toy_data(8))["loss"].backward()
    opt.step()
    save_checkpoint(
        tmp_path,
        model,
        step=1,
        epoch=0,
        optimizer=opt,
        rng_state={"loss": torch.Generator().get_state()},
    )
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "latest.json")
    fresh = torch.optim.AdamW(toy_model().parameters(), lr=1.0)
    fresh.load_state_dict(ckpt.optimizer_state)
    want, got = opt.state_dict(), fresh.state_dict()
    assert want["param_groups"] == got["param_groups"]
    for key in want["state"]:
        _assert_same_state(want["state"][key], got["state"][key])
    assert ckpt.rng_state["loss"].dtype == torch.uint8
