"""hepvld.config: validation, argparse generation, TOML merge, JSON round trip."""

from __future__ import annotations

import argparse
import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from hepvld.config import (
    Config,
    ConfigError,
    TrainConfig,
    add_dataclass_arguments,
    from_dict,
    load_toml,
    merge,
    namespace_overrides,
    to_dict,
)


class Sampler(str, enum.Enum):
    DDIM = "ddim"
    DDPM = "ddpm"


@dataclass(frozen=True)
class Encoder:
    """Encoder settings."""

    dim: int = field(default=32, metadata={"help": "hidden size"})
    kind: Literal["set", "mlp"] = field(default="set", metadata={"help": "encoder family"})


@dataclass(frozen=True)
class Outer(Config):
    """A nested test config."""

    encoder: Encoder = field(default_factory=Encoder, metadata={"help": "the encoder"})
    sampler: Sampler = field(default=Sampler.DDIM, metadata={"help": "sampler"})
    sizes: tuple[int, ...] = field(default=(1, 2), metadata={"help": "layer sizes"})
    out: Path | None = field(default=None, metadata={"help": "output path"})
    scale: float = field(default=1.0, metadata={"help": "a scale"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "TrainConfig.lr must be a positive number, got -1.0"),
        ({"min_lr": 1.0}, "TrainConfig.min_lr"),
        ({"betas": (0.9,)}, "TrainConfig.betas must be a sequence of 2 values"),
        ({"device": "tpu"}, "TrainConfig.device must be one of ['cpu', 'cuda', 'auto'], got 'tpu'"),
        ({"batch_size": 0}, "TrainConfig.batch_size must be >= 1, got 0"),
        ({"batch_size": 2.5}, "TrainConfig.batch_size must be an integer, got 2.5"),
        ({"compile": 1}, "TrainConfig.compile must be a boolean, got 1"),
        ({"ema_decay": 1.0}, "TrainConfig.ema_decay must be in [0, 1)"),
        ({"max_time": 0.0}, "TrainConfig.max_time must be > 0 or None"),
    ],
)
def test_train_config_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        TrainConfig(**kwargs)
    assert message in str(err.value)


def test_train_config_coerces_losslessly() -> None:
    cfg = TrainConfig(betas=[0.8, 0.9], lr=1, grad_clip=None)
    assert cfg.betas == (0.8, 0.9) and isinstance(cfg.lr, float) and cfg.grad_clip is None


def test_json_round_trip_with_nesting_enums_tuples_paths() -> None:
    cfg = Outer(encoder=Encoder(dim=8, kind="mlp"), sampler="ddpm", sizes=[3, 4, 5], out="a/b")
    assert cfg.sampler is Sampler.DDPM and cfg.out == Path("a/b") and cfg.sizes == (3, 4, 5)
    text = json.dumps(to_dict(cfg))
    assert from_dict(Outer, json.loads(text)) == cfg
    assert from_dict(
        TrainConfig, json.loads(json.dumps(to_dict(TrainConfig(seed=3))))
    ) == TrainConfig(seed=3)
    with pytest.raises(ConfigError, match=r"Outer\.encoder\.kind must be one of"):
        from_dict(Outer, {"encoder": {"kind": "cnn"}})
    with pytest.raises(ConfigError, match=r"unknown key Outer\.encoder\.dimm; did you mean 'dim'"):
        from_dict(Outer, {"encoder": {"dimm": 3}})


def test_argparse_documents_every_field_and_parses_types() -> None:
    parser = argparse.ArgumentParser(prog="t")
    add_dataclass_arguments(parser, TrainConfig, prefix="train")
    add_dataclass_arguments(parser, Outer, prefix="model")
    text = parser.format_help()
    for name in TrainConfig.__dataclass_fields__:
        assert "--train." + name.replace("_", "-") in text
    assert "peak learning rate of AdamW (default: 0.001)" in " ".join(text.split())
    assert "--model.encoder.dim" in text and "--no-train.compile" in text

    args = parser.parse_args(
        [
            "--train.lr",
            "1e-3",
            "--train.betas",
            "0.8",
            "0.95",
            "--train.max-time",
            "none",
            "--no-train.compile",
            "--train.device",
            "cpu",
            "--model.encoder.kind",
            "mlp",
            "--model.sampler",
            "ddpm",
            "--model.sizes",
            "7",
            "8",
        ]
    )
    assert namespace_overrides(args, TrainConfig, "train") == {
        "lr": 1e-3,
        "betas": [0.8, 0.95],
        "max_time": None,
        "compile": False,
        "device": "cpu",
    }
    model = merge(Outer, None, None, namespace_overrides(args, Outer, "model"))
    assert model == Outer(encoder=Encoder(kind="mlp"), sampler=Sampler.DDPM, sizes=(7, 8))
    with pytest.raises(SystemExit):
        parser.parse_args(["--train.device", "tpu"])


def test_merge_precedence_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        "[train]\nlr = 1e-3\nbatch_size = 256\nbetas = [0.8, 0.9]\n[model.encoder]\ndim = 64\n"
    )
    toml = load_toml(path)
    cfg = merge(TrainConfig, {"seed": 7, "lr": 1e-2}, toml["train"], {"batch_size": 64})
    assert (cfg.seed, cfg.lr, cfg.batch_size, cfg.betas) == (7, 1e-3, 64, (0.8, 0.9))
    model = merge(Outer, Outer(scale=2.0), toml["model"], {"encoder": {"kind": "mlp"}})
    assert model == Outer(encoder=Encoder(dim=64, kind="mlp"), scale=2.0)
    with pytest.raises(
        ConfigError, match=r"unknown key TrainConfig.lrr; did you mean 'lr'\? \(in TOML\)"
    ):
        merge(TrainConfig, None, {"lrr": 1.0})
    with pytest.raises(ConfigError, match=r"unknown key Outer.encoder.width.*\(in command line\)"):
        merge(Outer, None, None, {"encoder": {"width": 1}})
