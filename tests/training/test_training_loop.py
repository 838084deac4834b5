"""The training loop's outputs, weighting, schedule, budget and single-process DDP path."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import logging
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from toy_training_model import toy_data, toy_model

from hepvld.config import TrainConfig
from hepvld.training import evaluate, train, warmup_cosine

FAST = dict(lr=1e-2, min_lr=1e-4, warmup_steps=2, batch_size=16, log_every=3, device="cpu")


def test_run_directory_records(tmp_path: Path) -> None:
    rng_before = torch.get_rng_state()
    n_handlers = len(logging.getLogger("hepvld").handlers)
    result = train(
        toy_model(), toy_data(96), toy_data(48, seed=1), TrainConfig(epochs=6, **FAST), tmp_path
    )

    assert result.step == 6 * (96 // 16) and result.epoch == 6 and result.stopped == "completed"
    assert torch.equal(torch.get_rng_state(), rng_before)  # no global RNG side effects
    assert len(logging.getLogger("hepvld").handlers) == n_handlers
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:7] == ["step", "epoch", "split", "lr", "loss", "mse", "l1"]
    assert "grad_norm" in rows[0]
    val = [r for r in rows if r["split"] == "val"]
    assert [int(r["step"]) for r in val] == [6, 12, 18, 24, 30, 36]  # once per epoch
    train_rows = [r for r in rows if r["split"] == "train"]
    assert float(train_rows[-1]["loss"]) < float(train_rows[0]["loss"])
    assert float(val[-1]["loss"]) == pytest.approx(result.val_metrics["loss"], rel=1e-6)
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "step 36 val" in (tmp_path / "train.log").read_text()
    assert (tmp_path / "config.json").is_file()
    assert len(list((tmp_path / "checkpoints").glob("step_*"))) == 2  # keep_checkpoints
    assert result.checkpoint == tmp_path / "checkpoints" / "step_00000036"
    with pytest.raises(FileExistsError, match="resume=True"):  # never silently overwritten
        train(toy_model(), toy_data(96), None, TrainConfig(epochs=1, **FAST), tmp_path)


def test_evaluate_is_a_weighted_mean_over_the_whole_set() -> None:
    model = toy_model(noise=0.0).eval()
    data = toy_data(50)
    data["weights"][:10] *= 20  # strongly non-uniform weights
    full = model.loss(data)
    by_batches = evaluate(model, data, batch_size=7)
    for key in ("loss", "mse", "l1"):
        assert by_batches[key] == pytest.approx(full[key].item(), rel=1e-5)


def test_warmup_cosine_schedule() -> None:
    kw = dict(warmup_steps=4, total_steps=14, min_ratio=0.1)
    assert warmup_cosine(0, **kw) == pytest.approx(1 / 5)
    assert warmup_cosine(4, **kw) == pytest.approx(1.0)
    assert warmup_cosine(9, **kw) == pytest.approx(0.55)
    assert warmup_cosine(14, **kw) == pytest.approx(0.1)
    assert warmup_cosine(100, **kw) == pytest.approx(0.1)
    # a time budget: the decay runs over whichever is spent faster, steps or time
    assert warmup_cosine(9, **kw, time_fraction=1.0) == pytest.approx(0.1)
    assert warmup_cosine(9, **kw, time_fraction=0.2) == pytest.approx(0.55)
    assert warmup_cosine(5, **kw, time_fraction=0.5) == pytest.approx(0.55)
    assert warmup_cosine(2, **kw, time_fraction=0.9) == pytest.approx(3 / 5)  # warm-up: steps


def _lr_column(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [float(r["lr"]) for r in csv.DictReader(f) if r["split"] == "train"]


def test_decay_over_time_anneals_when_the_budget_is_spent(tmp_path: Path) -> None:
    fast = {**FAST, "log_every": 1, "val_every": 10**6, "checkpoint_every": 10**6}
    config = TrainConfig(max_steps=10**6, max_time=1.5, decay_over="time", **fast)
    result = train(toy_model(), toy_data(64), None, config, tmp_path / "time")
    assert result.stopped == "max_time" and result.step > 10
    lrs = _lr_column(tmp_path / "time")
    # by steps the 10**6-step cosine would still be at the peak lr; by time it ends at min_lr
    assert max(lrs) == pytest.approx(FAST["lr"], rel=0.05)
    assert lrs[-1] < 0.1 * FAST["lr"]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(lrs[2:]))  # monotone
    by_steps = TrainConfig(max_steps=10**6, max_time=0.5, **fast)
    train(toy_model(), toy_data(64), None, by_steps, tmp_path / "steps")
    assert _lr_column(tmp_path / "steps")[-1] > 0.99 * FAST["lr"]
    with pytest.raises(ValueError, match="decay_over"):
        TrainConfig(decay_over="time")  # needs a time budget


def test_decay_over_time_counts_the_budget_over_resumes(tmp_path: Path) -> None:
    config = TrainConfig(max_steps=10**6, max_time=0.6, decay_over="time", **FAST)
    first = train(toy_model(), toy_data(64), None, config, tmp_path)
    assert first.stopped == "max_time"
    again = train(toy_model(), toy_data(64), None, config, tmp_path, resume=True)
    # the budget was spent before: the resumed run stops after its first step
    assert again.stopped == "max_time" and again.step == first.step + 1


def test_max_time_stops_with_a_checkpoint(tmp_path: Path) -> None:
    result = train(
        toy_model(), toy_data(64), None, TrainConfig(epochs=50, max_time=1e-6, **FAST), tmp_path
    )
    assert result.stopped == "max_time" and result.step == 1
    assert result.checkpoint is not None and (result.checkpoint / "meta.json").is_file()


def test_accepts_dataclasses_drops_non_tensors_and_checks_sizes(tmp_path: Path) -> None:
    data = toy_data(32)
    Bundle = dataclasses.make_dataclass("Bundle", [*data, "cutflow"])
    bundle = Bundle(*data.values(), cutflow=object())  # non-tensors are dropped

    result = train(toy_model(), bundle, None, TrainConfig(max_steps=2, **FAST), tmp_path / "a")
    assert result.step == 2
    bad = toy_data(32)
    bad["weights"] = bad["weights"][:31]
    with pytest.raises(ValueError, match="weights"):
        train(toy_model(), bad, None, TrainConfig(max_steps=2, **FAST), tmp_path / "b")


def test_single_process_gloo_group_matches_plain_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = TrainConfig(max_steps=4, **FAST)
    plain = train(toy_model(), toy_data(64), toy_data(16, seed=1), config, tmp_path / "plain")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in dict(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1"
    ).items():
        monkeypatch.setenv(key, value)
    ddp = train(toy_model(), toy_data(64), toy_data(16, seed=1), config, tmp_path / "ddp")
    assert not dist.is_initialized()  # the group it created is gone
    for key, value in plain.model.state_dict().items():
        torch.testing.assert_close(ddp.model.state_dict()[key], value, rtol=1e-6, atol=1e-7)
    assert ddp.val_metrics == pytest.approx(plain.val_metrics, rel=1e-6)


def test_ema_decay_is_warmed_up_then_capped() -> None:
    from hepvld.training.optim import EMA

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.999)
    ema.update(model)  # first update copies
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # n = 1: decay (1 + 1) / (10 + 1)
    expected = 1.0 - 2.0 / 11.0
    torch.testing.assert_close(ema.module.weight, torch.full((1, 1), expected))
    ema.num_updates = 10**6
    assert ema.current_decay == 0.999
