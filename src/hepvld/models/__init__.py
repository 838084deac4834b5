"""Model families. Each is registered under a name used by the CLI and checkpoints.

``vld``, ``uc-vld``, ``c-vld`` (:mod:`~hepvld.models.vld`), ``ldm``
(:mod:`~hepvld.models.ldm`), ``vdm`` (:mod:`~hepvld.models.vdm`), ``cvae``
(:mod:`~hepvld.models.cvae`), ``cinn`` (:mod:`~hepvld.models.cinn`); all subclass
:class:`~hepvld.models.base.ConditionalGenerator` (shared detector encoder, consistency
loss, ``sample``), the diffusion ones via :class:`~hepvld.models.denoising.DiffusionGenerator`.
Family modules are imported on first use.
"""

from hepvld.models.base import ConditionalGenerator
from hepvld.models.config import PRESETS, VARIANTS, ModelConfig, model_config
from hepvld.models.registry import MODELS, build_model

__all__ = [
    "MODELS",
    "PRESETS",
    "VARIANTS",
    "ConditionalGenerator",
    "ModelConfig",
    "build_model",
    "model_config",
]
