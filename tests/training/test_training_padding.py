"""Training does not depend on padding: garbage in padded slots and extra padded slots
change nothing, and the packed detector encoder trains like the padded computation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from hepvld.config import TrainConfig
from hepvld.models import build_model, model_config
from hepvld.physics import TARGET_DIM
from hepvld.training import train

CONFIG = TrainConfig(
    lr=1e-2, warmup_steps=2, max_steps=6, batch_size=16, log_every=1, device="cpu", seed=3
)
N, F = 9, 12


def _model(packed: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(
        "vld",
        model_config("tiny"),
        object_features=F,
        global_features=2,
        target_shift=torch.zeros(TARGET_DIM),
        target_scale=torch.full((TARGET_DIM,), 50.0),
    )
    model.detector_encoder.packed = packed
    return model


def _data(n: int = 48) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    counts = torch.randint(0, N + 1, (n,), generator=g)
    counts[0] = N  # one full event, so the batches' longest event varies
    mask = torch.arange(N)[None, :] < counts[:, None]
    objects = torch.randn(n, N, F, generator=g).masked_fill(~mask[..., None], 0.0)
    return {
        "objects": objects,
        "mask": mask,
        "globals": torch.randn(n, 2, generator=g),
        "targets": torch.randn(n, TARGET_DIM, generator=g).unflatten(-1, (11, 5)),
        "weights": torch.rand(n, generator=g) + 0.5,
    }


def _losses(run_dir: Path) -> list[str]:
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    return [r for r in rows if ",train," in r]


def _garbage(data: dict[str, torch.Tensor], extra: int) -> dict[str, torch.Tensor]:
    """Padded slots filled with huge values, and ``extra`` more padded slots of garbage."""
    g = torch.Generator().manual_seed(9)
    n = len(data["mask"])
    mask = torch.cat([data["mask"], torch.zeros(n, extra, dtype=torch.bool)], dim=1)
    objects = torch.cat([data["objects"], torch.zeros(n, extra, F)], dim=1)
    noise = 1e6 * torch.randn(objects.shape, generator=g)
    return {**data, "mask": mask, "objects": torch.where(mask[..., None], objects, noise)}


def test_garbage_and_extra_padding_change_nothing(tmp_path: Path) -> None:
    data = _data()
    clean = train(_model(), data, None, CONFIG, tmp_path / "clean")
    dirty = train(_model(), _garbage(data, extra=5), None, CONFIG, tmp_path / "dirty")
    assert _losses(tmp_path / "clean") == _losses(tmp_path / "dirty")
    for key, value in clean.model.state_dict().items():
        assert torch.equal(dirty.model.state_dict()[key], value), key


def test_packed_encoder_trains_like_the_padded_computation(tmp_path: Path) -> None:
    data = _data()
    packed = train(_model(packed=True), data, None, CONFIG, tmp_path / "packed")
    padded = train(_model(packed=False), data, None, CONFIG, tmp_path / "padded")
    assert packed.train_metrics.keys() == padded.train_metrics.keys()
    for key, value in padded.train_metrics.items():
        torch.testing.assert_close(packed.train_metrics[key], value, rtol=1e-4, atol=1e-5)
    for key, value in padded.model.state_dict().items():
        torch.testing.assert_close(packed.model.state_dict()[key], value, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_on_cpu_trains(tmp_path: Path) -> None:
    data = _data()
    one_step = dataclasses.replace(CONFIG, max_steps=1)  # same weights: compare one loss
    fp32 = train(_model(), data, None, one_step, tmp_path / "fp32")
    bf16 = train(
        _model(), data, None, dataclasses.replace(one_step, amp_cpu=True), tmp_path / "bf16"
    )
    assert all(torch.isfinite(torch.tensor(v)) for v in bf16.train_metrics.values())
    assert bf16.train_metrics["loss"] != fp32.train_metrics["loss"]  # autocast was applied
    assert bf16.train_metrics["loss"] == pytest.approx(
        fp32.train_metrics["loss"], rel=0.03
    )  # bf16: 8-bit mantissa
