"""Model families. Each is registered under a name used by the CLI and checkpoints.

``vld``, ``uc-vld``, ``c-vld`` (:mod:`~hepvld.models.vld`), ``ldm``
(:mod:`~hepvld.models.ldm`), ``vdm`` (:mod:`~hepvld.models.vdm`), ``cvae``
(:mod:`~hepvld.models.cvae`), ``cinn`` (:mod:`~hepvld.models.cinn`), ``vl-vld``, ``uc-vl-vld``,
``c-vl-vld`` (:mod:`~hepvld.models.vlvld`, particle level); each subclasses
:class:`~hepvld.models.base.ConditionalGenerator` (shared detector encoder, normalisation
buffers, consistency loss, ``sample``/``unfold``), the diffusion ones compose a
:class:`~hepvld.models.denoising.ConditionalDiffusion`. Each family module registers
itself (:func:`~hepvld.models.registry.register`) and is imported here.
:func:`~hepvld.models.rebuild.rebuild_model` rebuilds a network from a checkpoint.
"""

from hepvld.models import cinn, cvae, ldm, vdm, vld, vlvld  # noqa: F401  (register the families)
from hepvld.models.base import ConditionalGenerator, Draws, ModelIO
from hepvld.models.config import PRESETS, VARIANTS, ModelConfig, model_config
from hepvld.models.registry import MODELS, build_model

__all__ = [
    "MODELS",
    "PRESETS",
    "VARIANTS",
    "ConditionalGenerator",
    "Draws",
    "ModelConfig",
    "ModelIO",
    "build_model",
    "model_config",
]
