"""Registry of model families: a name -> a constructor with one signature."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from torch import Tensor, nn

from hepvld.models.config import VARIANTS, ModelConfig

__all__ = ["MODELS", "ModelFactory", "build_model", "register"]


class ModelFactory(Protocol):
    """``factory(config, object_features, global_features, target_dim, target_shift, target_scale)``."""

    def __call__(
        self,
        config: ModelConfig,
        object_features: int,
        global_features: int,
        target_dim: int,
        target_shift: Tensor | None,
        target_scale: Tensor | None,
    ) -> nn.Module: ...


#: Registered model names -> factories.
MODELS: dict[str, ModelFactory] = {}


def register(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering a model factory under ``name``."""

    def wrap(factory: ModelFactory) -> ModelFactory:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = factory
        return factory

    return wrap


def _lazy_factory(module: str, cls: str, variant: str | None = None) -> ModelFactory:
    """A factory importing ``module.cls`` on first use; ``variant`` (if given) is forced."""

    def factory(
        config: ModelConfig,
        object_features: int,
        global_features: int,
        target_dim: int,
        target_shift: Tensor | None,
        target_scale: Tensor | None,
    ) -> nn.Module:
        model_cls = getattr(importlib.import_module(module), cls)
        if variant is not None and config.variant != variant:
            config = ModelConfig.from_dict({**config.to_dict(), "variant": variant})
        return model_cls(
            config, object_features, global_features, target_dim, target_shift, target_scale
        )

    return factory


for _variant in VARIANTS:
    register(_variant)(_lazy_factory("hepvld.models.vld", "VLD", _variant))
register("ldm")(_lazy_factory("hepvld.models.ldm", "LDM", "vld"))
register("vdm")(_lazy_factory("hepvld.models.vdm", "VDM"))
register("cvae")(_lazy_factory("hepvld.models.cvae", "CVAE"))
register("cinn")(_lazy_factory("hepvld.models.cinn", "CINN"))


def build_model(
    name: str,
    config: ModelConfig,
    *,
    object_features: int,
    global_features: int,
    target_dim: int,
    target_shift: Tensor | None = None,
    target_scale: Tensor | None = None,
) -> nn.Module:
    """Construct the registered model ``name`` (see :data:`MODELS`)."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered: {sorted(MODELS)}") from None
    return factory(config, object_features, global_features, target_dim, target_shift, target_scale)
