"""The model contract, checked on every registered model (``tiny`` preset).

Shapes, gradients (LDM: per stage), reproducible sampling from given noise, checkpoint
round trips (in memory and through the train CLI + ``hepvld.load``), ``hepvld.unfold``
on an empty and a small input, and a short training run that lowers the loss.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

import hepvld
from hepvld.config import TrainConfig
from hepvld.diffusion import SamplerSpec
from hepvld.io import open_events
from hepvld.models import MODELS, build_model, model_config
from hepvld.models.registry import family_level
from hepvld.physics import PARTONS, TARGET_DIM
from hepvld.training import load_model, save_checkpoint, train

B, N, F, G = 6, 5, 12, 2
# the parton-level families (the particle-level VL-VLD: tests/models/test_vlvld.py)
NAMES = sorted(name for name in MODELS if family_level(name) == "parton")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny networks: threads only add contention (the machine runs ``-n 2`` workers)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def make_batch(seed: int = 0, size: int = B) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(size, N, dtype=torch.bool)
    mask[0, 3:] = False
    mask[1, 1:] = False
    return {
        "objects": torch.randn(size, N, F, generator=gen),
        "mask": mask,
        "globals": torch.randn(size, G, generator=gen),
        "targets": torch.randn(size, TARGET_DIM, generator=gen).unflatten(-1, (11, 5)),
        "weights": torch.rand(size, generator=gen) + 0.5,
    }


def make_model(name: str, **overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)  # test-local determinism of the initial weights
    return build_model(
        name,
        model_config("tiny", **overrides),
        object_features=F,
        global_features=G,
        target_shift=torch.zeros(TARGET_DIM),
        target_scale=torch.full((TARGET_DIM,), 10.0),
    )


def _sample(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], noise: torch.Tensor, **kw: object
) -> torch.Tensor:
    draws = model.sample(
        batch["objects"],
        batch["mask"],
        batch["globals"],
        n_samples=noise.shape[1],
        sampler=SamplerSpec("ddim", 3),
        noise=noise,
        **kw,
    )
    assert draws.mask.shape == draws.values.shape[:-1] and draws.mask.all()  # fixed level
    return draws.values.flatten(2)


def _grad_reached(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.grad is not None and torch.any(p.grad != 0)}


@pytest.mark.parametrize("name", NAMES)
def test_loss_and_sample_shapes(name: str) -> None:
    model = make_model(name)
    out = model.loss(make_batch(), generator=torch.Generator().manual_seed(1))
    assert "loss" in out
    for key, value in out.items():
        assert value.shape == () and torch.isfinite(value), key
    model.eval()
    noise = torch.randn(B, 3, *model.noise_shape, generator=torch.Generator().manual_seed(2))
    draws = _sample(model, make_batch(), noise)
    assert draws.shape == (B, 3, TARGET_DIM) and torch.isfinite(draws).all()
    empty = make_batch(size=2)
    empty = {k: v[:0] for k, v in empty.items()}
    assert _sample(model, empty, noise[:0]).shape == (0, 3, TARGET_DIM)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    model = make_model(name)
    names = {n for n, _ in model.named_parameters()}
    if name != "ldm":
        model.loss(make_batch(), generator=torch.Generator().manual_seed(1))["loss"].backward()
        assert _grad_reached(model) == names, (
            f"no gradient reaches {sorted(names - _grad_reached(model))}"
        )
        return
    # LDM: stage 1 trains exactly the VAE, stage 2 exactly the rest.
    vae = {
        n
        for n, _ in model.named_parameters()
        if n.startswith(("vae_encoder.", "vae_decoder.", "decoder_log_scale"))
    }
    for stage, expected in ((1, vae), (2, names - vae)):
        model.zero_grad(set_to_none=True)
        model.stage_step.fill_(0 if stage == 1 else model.config.ldm_vae_steps)
        assert model.stage == stage
        out = model.loss(make_batch(), generator=torch.Generator().manual_seed(1))
        assert out["stage"].item() == stage
        out["loss"].backward()
        assert _grad_reached(model) == expected, stage


@pytest.mark.parametrize("name", NAMES)
def test_given_noise_makes_draws_reproducible_per_event(name: str) -> None:
    model = make_model(name).eval()
    batch = make_batch()
    noise = torch.randn(B, 2, *model.noise_shape, generator=torch.Generator().manual_seed(5))
    full = _sample(model, batch, noise, generator=torch.Generator().manual_seed(1))
    part = _sample(
        model,
        {k: v[2:4] for k, v in batch.items()},
        noise[2:4],
        generator=torch.Generator().manual_seed(99),
    )
    torch.testing.assert_close(full[2:4], part, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="noise has shape"):
        _sample(model, batch, torch.zeros(B, 2, model.noise_shape[0] + 1))


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip(name: str, tmp_path: Path) -> None:
    model = make_model(name)
    model.loss(make_batch(), generator=torch.Generator().manual_seed(1))["loss"].backward()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))  # not the initial weights
    if name == "ldm":
        model.stage_step.fill_(7)
    save_checkpoint(tmp_path, model, step=1, epoch=0, extra={"model": name})
    loaded, ckpt = load_model(
        tmp_path, lambda meta: make_model(meta["extra"]["model"]), use_ema=False
    )
    assert ckpt.meta["extra"]["model"] == name
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    model.eval()
    noise = torch.randn(B, 2, *model.noise_shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(
        _sample(model, make_batch(), noise), _sample(loaded, make_batch(), noise)
    )


@pytest.mark.parametrize("name", NAMES)
def test_a_few_training_steps_reduce_the_loss(name: str) -> None:
    model = make_model(name, ldm_vae_steps=1000)  # LDM: stay in stage 1
    batch = make_batch(size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(4)
    losses = []
    for _ in range(40):
        loss = model.loss(batch, generator=gen)["loss"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < first - 0.05 * abs(first), (first, last)


def test_ldm_switches_stage_by_step_and_resumes_exactly(tmp_path: Path) -> None:
    data = {k: v for k, v in make_batch(size=48).items()}
    config = TrainConfig(
        lr=1e-3,
        warmup_steps=1,
        max_steps=6,
        batch_size=16,
        ema_decay=0.9,
        device="cpu",
        seed=1,
        log_every=1,
        checkpoint_every=100,
    )
    straight = train(make_model("ldm"), data, None, config, tmp_path / "a")
    assert int(straight.model.stage_step) == 6 and straight.model.stage == 2
    assert int(straight.ema_model.stage_step) == 6
    metrics = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    stage_col = metrics[0].split(",").index("stage")
    assert [float(r.split(",")[stage_col]) for r in metrics[1:]] == [1.0] * 4 + [2.0] * 2
    # cut short after its first step (stage 1), then resumed across the switch
    train(
        make_model("ldm"),
        data,
        None,
        TrainConfig(**{**config.__dict__, "max_time": 1e-9}),
        tmp_path / "b",
    )
    resumed = train(make_model("ldm"), data, None, config, tmp_path / "b", resume=True)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_train_cli_load_and_unfold(name: str, tiny_root_file: Path, tmp_path: Path) -> None:
    from hepvld.cli.train import main as train_main

    run = tmp_path / name
    rc = train_main(
        [
            str(tiny_root_file),
            "--model",
            name,
            "--run-dir",
            str(run),
            "--preset",
            "tiny",
            "--train.max-steps",
            "5",
            "--train.batch-size",
            "32",
            "--train.warmup-steps",
            "1",
            "--train.device",
            "cpu",
        ]
    )
    assert rc == 0
    um = hepvld.load(run)
    assert um.name == name and type(um.model).__name__ == type(make_model(name)).__name__
    events = open_events(tiny_root_file)
    empty = hepvld.unfold(events[:0], model=um, n_samples=2, steps=2)
    assert len(empty) == 0 and ak.fields(empty) == list(PARTONS)
    out = hepvld.unfold(events[:12], model=um, n_samples=2, steps=2, raw=True, seed=3)
    raw = ak.to_numpy(out.raw[~ak.is_none(out, axis=0)])
    assert len(out) == 12 and raw.shape[1:] == (2, TARGET_DIM) and np.isfinite(raw).all()


@pytest.mark.parametrize("name", NAMES)
def test_checkpoints_of_earlier_versions_load(name: str) -> None:
    """State dicts written before the seam (flat (55,) target buffers, no normaliser buffers,
    diffusion parts at top level) load into today's networks, and metadata without a
    ``target_level`` rebuilds a parton-level network."""
    from hepvld.models.rebuild import rebuild_model
    from hepvld.targets import PARTON

    model = make_model(name)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    old = {}
    for key, value in model.state_dict().items():
        if key.startswith("detector_norm."):
            continue
        if key in ("target_shift", "target_scale"):
            value = value.flatten()
        old[key.removeprefix("diffusion.")] = value
    loaded = make_model(name)
    loaded.load_state_dict(old)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    meta = {
        "model": name,
        "model_config": model.config.to_dict(),
        "object_features": F,
        "global_features": G,
        "target_dim": TARGET_DIM,
    }
    rebuilt = rebuild_model(meta)
    assert rebuilt.level is PARTON and rebuilt.target_shape == (11, 5)
    rebuilt.load_state_dict(old)
