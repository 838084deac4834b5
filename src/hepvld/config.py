"""Settings as frozen dataclasses, and the generic machinery around them.

Every group of settings is a frozen dataclass whose fields carry their help text in
``field(metadata={"help": ...})`` and whose ``__post_init__`` validates the values.
The same class then drives the command line, TOML files and JSON checkpoints:

>>> parser = argparse.ArgumentParser()
>>> add_dataclass_arguments(parser, TrainConfig, prefix="train")  # --train.lr, ...
>>> args = parser.parse_args(["--train.lr", "1e-3"])
>>> cfg = merge(TrainConfig, None, load_toml("run.toml").get("train", {}),
...             namespace_overrides(args, TrainConfig, prefix="train"))
>>> from_dict(TrainConfig, to_dict(cfg)) == cfg
True

Precedence is command line > TOML > defaults; an unknown key anywhere is an error that
names it. The generic helpers work on any frozen dataclass (e.g.
``hepvld.models.ModelConfig``); :class:`Config` is an optional base class that adds type
coercion (``list`` -> ``tuple``, ``int`` -> ``float``, ``str`` -> ``Enum``) and type checks
before the class's own :meth:`Config.validate`.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import functools
import math
import operator
import os
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, cast

__all__ = [
    "Config",
    "ConfigError",
    "TrainConfig",
    "add_dataclass_arguments",
    "from_dict",
    "load_toml",
    "merge",
    "namespace_overrides",
    "to_dict",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """An invalid setting: wrong type, out of range, or an unknown key."""


# --------------------------------------------------------------------------- types


def _hints(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass (works with ``from __future__ import annotations``)."""
    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, globalns=vars(module) if module else None)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _without_none(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(tp, False)``."""
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else functools.reduce(operator.or_, args)), True
    return tp, False


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it losslessly.

    Accepted conversions: ``list`` -> ``tuple``, ``int`` -> ``float``, ``str`` -> ``Enum``
    (by value), ``str`` -> ``Path``, ``dict`` -> nested dataclass. Anything else that does
    not match raises :class:`ConfigError` naming ``where`` and the value.
    """

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{where} must be {expected}, got {value!r}")

    if tp is Any:
        return value
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
        raise fail(" or ".join(_type_name(a) for a in args))
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise fail(f"one of {list(choices)}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (tuple, list)):
            raise fail(_type_name(tp))
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(value) != len(args):
            raise fail(f"a sequence of {len(args)} values")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (tuple, list)):
            raise fail(_type_name(tp))
        return [_coerce(v, arg, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Mapping):
        key_tp, val_tp = typing.get_args(tp) or (Any, Any)
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        return {
            _coerce(k, key_tp, f"{where} key"): _coerce(v, val_tp, f"{where}[{k!r}]")
            for k, v in value.items()
        }
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return from_dict(tp, value, _where=where)
        raise fail(f"a {tp.__name__} or a mapping")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            raise fail(f"one of {[m.value for m in tp]}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise fail("a boolean")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if tp in (Path, os.PathLike):
        if not isinstance(value, (str, os.PathLike)):
            raise fail("a path")
        return Path(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise fail(_type_name(tp))
    return value


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


# --------------------------------------------------------------------------- base class


@dataclass(frozen=True)
class Config:
    """Optional base for settings: coerces and type-checks fields, then calls :meth:`validate`.

    Subclasses are frozen dataclasses; they override :meth:`validate` for range checks and
    raise :class:`ConfigError` (see :meth:`check`).
    """

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            where = f"{type(self).__name__}.{f.name}"
            object.__setattr__(self, f.name, _coerce(getattr(self, f.name), hints[f.name], where))
        self.validate()

    def validate(self) -> None:
        """Range and consistency checks; the types are already right when this runs."""

    def check(self, ok: bool, name: str, requirement: str) -> None:
        """Raise ``ConfigError("Cls.name must be <requirement>, got <value>")`` unless ``ok``."""
        if not ok:
            value = getattr(self, name)
            raise ConfigError(f"{type(self).__name__}.{name} must be {requirement}, got {value!r}")


# --------------------------------------------------------------------------- dict round trip


def to_dict(obj: Any) -> Any:
    """A dataclass (nested, with tuples, enums, paths) as plain JSON/TOML-ready values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: type[T], data: Mapping[str, Any], *, _where: str | None = None) -> T:
    """Build ``cls`` from :func:`to_dict` output (or TOML/JSON), validating every value.

    Missing keys take the class defaults; unknown keys raise :class:`ConfigError`.
    """
    where = _where or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {data!r}")
    _check_keys(cls, data, where)
    hints = _hints(cls)
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # e.g. a required field missing
        raise ConfigError(f"{where}: {err}") from None


def _check_keys(cls: type, data: Mapping[str, Any], where: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {names}"
            raise ConfigError(f"unknown key {where}.{key}{hint}")


# --------------------------------------------------------------------------- TOML + merge


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML file into a dict (``tomllib``; ``tomli`` on Python 3.10)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(path, "rb") as f:
        return tomllib.load(f)


def merge(
    cls: type[T],
    defaults: T | Mapping[str, Any] | None = None,
    toml_dict: Mapping[str, Any] | None = None,
    cli_overrides: Mapping[str, Any] | None = None,
) -> T:
    """Layer settings, later winning: ``cls`` defaults < ``defaults`` < TOML < command line.

    Parameters
    ----------
    cls
        A (frozen) dataclass.
    defaults
        An instance of ``cls`` or a partial dict (e.g. a preset); ``None`` for the class
        defaults.
    toml_dict
        The table for ``cls`` from :func:`load_toml` (nested tables for nested dataclasses).
    cli_overrides
        Only the options given on the command line, from :func:`namespace_overrides`.

    Raises
    ------
    ConfigError
        For an unknown key in any layer (the message names the key and the layer) or an
        invalid merged value.
    """
    merged: dict[str, Any] = {}
    if dataclasses.is_dataclass(defaults) and not isinstance(defaults, type):
        merged = to_dict(defaults)
    elif defaults is not None:
        given = cast("Mapping[str, Any]", defaults)
        _check_nested_keys(cls, given, cls.__name__, "defaults")
        merged = to_dict(dict(given))
    for source, layer in (("TOML", toml_dict), ("command line", cli_overrides)):
        if layer:
            _check_nested_keys(cls, layer, cls.__name__, source)
            _deep_update(merged, to_dict(dict(layer)))
    return from_dict(cls, merged)


def _check_nested_keys(cls: type, data: Mapping[str, Any], where: str, source: str) -> None:
    try:
        _check_keys(cls, data, where)
    except ConfigError as err:
        raise ConfigError(f"{err} (in {source})") from None
    hints = _hints(cls)
    for key, value in data.items():
        inner, _ = _without_none(hints[key])
        if (
            isinstance(inner, type)
            and dataclasses.is_dataclass(inner)
            and isinstance(value, Mapping)
        ):
            _check_nested_keys(inner, value, f"{where}.{key}", source)


def _deep_update(base: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


# --------------------------------------------------------------------------- argparse


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, prefix: str = ""
) -> argparse._ArgumentGroup:
    """Add one ``--option`` per field of the dataclass ``cls`` (recursing into nested ones).

    Options are ``--{prefix}.{field-name}`` (``--field-name`` without prefix), underscores
    written as hyphens; nested dataclass fields become ``--{prefix}.{field}.{sub-field}``.
    Help comes from ``field(metadata={"help": ...})`` plus the default. Types follow the
    annotations: ``bool`` -> ``--x/--no-x``; ``Literal``/``Enum`` -> ``choices``;
    ``tuple[float, float]`` -> two values; ``X | None`` also accepts ``none``.

    Parsed values are absent from the namespace unless given (``argparse.SUPPRESS``), so
    :func:`namespace_overrides` returns exactly what the user typed, ready for :func:`merge`.
    The parser's ``allow_abbrev`` is switched off: a misspelt option is an error, never a
    silent prefix match.
    """
    # Abbreviations would let ``--train.max-step 10`` pass for ``--train.max-steps``; with
    # this many similar long options they are never safe.
    parser.allow_abbrev = False
    doc = (cls.__doc__ or "").strip().splitlines()
    group = parser.add_argument_group(prefix or cls.__name__, doc[0] if doc else None)
    _add_fields(group, cls, prefix)
    return group


def _add_fields(group: argparse._ArgumentGroup, cls: type, prefix: str) -> None:
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        dest = f"{prefix}.{f.name}" if prefix else f.name
        tp, optional = _without_none(hints[f.name])
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            _add_fields(group, tp, dest)
            continue
        flag = "--" + dest.replace("_", "-")
        default = _field_default(f)
        help_text = f.metadata.get("help", "")
        if tp is bool and isinstance(default, bool):
            # "(default: True)" beside --x/--no-x reads as "off"; say which flag does what.
            negative = "--no-" + flag[2:]
            state = (
                f"on by default; {negative} turns it off"
                if default
                else f"off by default; {flag} turns it on"
            )
            help_text = f"{help_text} ({state})" if help_text else state
        elif default is not dataclasses.MISSING:
            shown = _show(to_dict(default))
            help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": help_text}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(_argparse_type(tp, optional, dest))
        group.add_argument(flag, **kwargs)


def _show(value: Any) -> str:
    """A default as it would be typed on the command line."""
    if value is None:
        return "none"
    if isinstance(value, list):
        return " ".join(map(_show, value))
    return str(value)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _argparse_type(tp: Any, optional: bool, dest: str) -> dict[str, Any]:
    """``type``/``choices``/``nargs``/``metavar`` for one annotation."""
    origin = typing.get_origin(tp)
    out: dict[str, Any] = {}
    if origin is Literal or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        choices = list(typing.get_args(tp)) if origin is Literal else [m.value for m in tp]
        scalar = type(choices[0])
        out["choices"] = choices + ([None] if optional else [])
        out["metavar"] = "{" + ",".join(map(str, choices)) + (",none" if optional else "") + "}"
        out["type"] = _none_or(scalar, optional)
        return out
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            out["nargs"] = len(args)
            out["type"] = _none_or(args[0], optional=False)
            out["metavar"] = tuple(getattr(a, "__name__", "X").upper() for a in args)
        else:
            out["nargs"] = "+"
            out["type"] = _none_or(args[0] if args else str, optional=False)
        return out
    if tp in (int, float, str, Path):
        out["type"] = _none_or(tp, optional)
        out["metavar"] = tp.__name__.upper() + ("|none" if optional else "")
        return out
    raise TypeError(f"add_dataclass_arguments: no command-line form for {dest}: {tp}")


def _none_or(scalar: type, optional: bool) -> Any:
    if not optional:
        return scalar

    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null") else scalar(text)

    parse.__name__ = scalar.__name__  # argparse names the type in its error messages
    return parse


def namespace_overrides(args: argparse.Namespace, cls: type, prefix: str = "") -> dict[str, Any]:
    """The options of ``cls`` that were given on the command line, as a nested dict."""
    given = vars(args)
    out: dict[str, Any] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        dest = f"{prefix}.{f.name}" if prefix else f.name
        tp, _ = _without_none(hints[f.name])
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            inner = namespace_overrides(args, tp, dest)
            if inner:
                out[f.name] = inner
        elif dest in given:
            out[f.name] = given[dest]
    return out


# --------------------------------------------------------------------------- TrainConfig


def _help(text: str, default: Any) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class TrainConfig(Config):
    """Optimisation, schedule, averaging, logging and hardware settings of one training run."""

    # optimiser and schedule
    lr: float = _help("peak learning rate of AdamW", 1e-3)
    min_lr: float = _help("learning rate at the end of the cosine decay", 5e-6)
    weight_decay: float = _help("AdamW decoupled weight decay (matrices only)", 0.01)
    betas: tuple[float, float] = _help("AdamW (beta1, beta2)", (0.9, 0.999))
    warmup_steps: int = _help("linear warm-up steps before the cosine decay", 100)
    epochs: int = _help("passes over the training data (ignored if max_steps is set)", 100)
    max_steps: int | None = _help("total optimiser steps; overrides epochs", None)
    batch_size: int = _help("events per optimiser step (per process under torchrun)", 1024)
    grad_clip: float | None = _help("clip the global gradient norm at this value; none = off", 1.0)
    ema_decay: float = _help("decay of the weight average used for validation/sampling", 0.999)
    # bookkeeping
    val_every: int | None = _help("validate every this many steps; none = each epoch", None)
    checkpoint_every: int | None = _help(
        "checkpoint every this many steps; none = each epoch", None
    )
    keep_checkpoints: int = _help("how many most recent checkpoints to keep on disk", 2)
    log_every: int = _help("steps between training-metric rows", 50)
    seed: int = _help("seed of data order, loss noise and dropout (no global seeding)", 0)
    max_time: float | None = _help(
        "wall-clock budget in seconds: checkpoint and stop cleanly when spent", None
    )
    decay_over: Literal["steps", "time"] = _help(
        "what the cosine decay runs over: the step budget, or max_time (the lr reaches "
        "min_lr when the time budget is spent; max_time then counts over resumes)",
        "steps",
    )
    # hardware
    device: Literal["cpu", "cuda", "auto"] = _help(
        "where to train; auto = cuda if available", "auto"
    )
    amp: Literal["none", "bf16", "fp16"] = _help(
        "autocast precision on GPU (ignored on CPU)", "bf16"
    )
    amp_cpu: bool = _help(
        "bf16 autocast on CPU too (measured on a 2-core AVX-512 CPU: 1.09x the paper "
        "preset's step, 0.67x the tiny one's; effect on quality not measured)",
        False,
    )
    compile: bool = _help("wrap the model in torch.compile", False)
    num_threads: int | None = _help("torch CPU threads during training; none = torch default", None)

    def validate(self) -> None:
        finite = math.isfinite
        self.check(self.lr > 0 and finite(self.lr), "lr", "a positive number")
        self.check(0 <= self.min_lr <= self.lr, "min_lr", f"in [0, lr={self.lr}]")
        self.check(self.weight_decay >= 0, "weight_decay", ">= 0")
        self.check(all(0 <= b < 1 for b in self.betas), "betas", "two numbers in [0, 1)")
        self.check(self.warmup_steps >= 0, "warmup_steps", ">= 0")
        self.check(self.epochs >= 1, "epochs", ">= 1")
        self.check(self.max_steps is None or self.max_steps >= 1, "max_steps", ">= 1 or None")
        self.check(self.batch_size >= 1, "batch_size", ">= 1")
        self.check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "> 0 or None")
        self.check(0 <= self.ema_decay < 1, "ema_decay", "in [0, 1)")
        self.check(self.val_every is None or self.val_every >= 1, "val_every", ">= 1 or None")
        self.check(
            self.checkpoint_every is None or self.checkpoint_every >= 1,
            "checkpoint_every",
            ">= 1 or None",
        )
        self.check(self.keep_checkpoints >= 1, "keep_checkpoints", ">= 1")
        self.check(self.log_every >= 1, "log_every", ">= 1")
        self.check(0 <= self.seed < 2**63, "seed", "in [0, 2**63)")
        self.check(self.max_time is None or self.max_time > 0, "max_time", "> 0 or None")
        self.check(
            self.decay_over == "steps" or self.max_time is not None,
            "decay_over",
            "'steps' unless max_time is set",
        )
        self.check(self.num_threads is None or self.num_threads >= 1, "num_threads", ">= 1 or None")
