"""Registry of model families: a name -> a constructor ``factory(config, io) -> nn.Module``.

Each family registers itself in its own module with :func:`register`; importing
:mod:`hepvld.models` imports every family module (plain imports).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from torch import nn

from hepvld.models.config import ModelConfig

if TYPE_CHECKING:
    from hepvld.models.base import ModelIO
    from hepvld.targets import TargetLevel

__all__ = ["MODELS", "ModelFactory", "build_model", "family_level", "register"]


class ModelFactory(Protocol):
    """``factory(config, io) -> nn.Module`` (``io``: :class:`~hepvld.models.base.ModelIO`)."""

    def __call__(self, config: ModelConfig, io: ModelIO) -> nn.Module: ...


#: Registered model names -> factories.
MODELS: dict[str, ModelFactory] = {}
#: Registered model names -> the target level a new run of the family unfolds to.
LEVEL_OF: dict[str, str] = {}


def register(name: str, *, level: str = "parton") -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering a model factory under ``name``; ``level`` is the target
    level (:mod:`hepvld.targets`) a new training run of this family uses."""

    def wrap(factory: ModelFactory) -> ModelFactory:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = factory
        LEVEL_OF[name] = level
        return factory

    return wrap


def family_level(name: str) -> str:
    """The target level a new run of the registered family ``name`` trains on."""
    try:
        return LEVEL_OF[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered: {sorted(MODELS)}") from None


def build_model(
    name: str,
    config: ModelConfig,
    io: ModelIO | None = None,
    *,
    object_features: int | None = None,
    global_features: int | None = None,
    level: str | TargetLevel = "parton",
    detector_preprocessing: Mapping[str, Any] | None = None,
    target_shift: Any = None,
    target_scale: Any = None,
) -> nn.Module:
    """Construct the registered model ``name`` (see :data:`MODELS`).

    Give either ``io`` or its fields as keywords (``object_features``, ``global_features``,
    ``level``, ``detector_preprocessing``, ``target_shift``, ``target_scale``).
    """
    from hepvld.models.base import ModelIO

    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered: {sorted(MODELS)}") from None
    if io is None:
        if object_features is None or global_features is None:
            raise TypeError("build_model needs io or object_features and global_features")
        io = ModelIO(
            int(object_features),
            int(global_features),
            level,
            detector_preprocessing,
            target_shift,
            target_scale,
        )
    return factory(config, io)
