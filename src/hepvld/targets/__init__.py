"""Target levels: *what is unfolded*, one object per level (the seam of docs/architecture.md).

``parton`` (:mod:`~hepvld.targets.parton`): the paper's 11 partons × 5 components;
``particle`` (:mod:`~hepvld.targets.particle`): VL-VLD's variable-length particle level. A level
implements :class:`~hepvld.targets.base.TargetLevel` and registers itself by name in its
own module (:func:`~hepvld.targets.base.register_level`); checkpoints record the name.
"""

from hepvld.targets.base import (
    LEVELS,
    TargetLevel,
    TargetPreprocessing,
    TargetTensors,
    get_level,
    level_from_meta,
    register_level,
)
from hepvld.targets.particle import ParticleLevel, ParticlePreprocessing
from hepvld.targets.parton import PARTON, PartonLevel, PartonPreprocessing

__all__ = [
    "LEVELS",
    "PARTON",
    "ParticleLevel",
    "ParticlePreprocessing",
    "PartonLevel",
    "PartonPreprocessing",
    "TargetLevel",
    "TargetPreprocessing",
    "TargetTensors",
    "get_level",
    "level_from_meta",
    "register_level",
]
