"""Awkward events -> padded numpy tensors: selection + cut-flow, features, preprocessing."""

from hepvld.features.detector import (
    DETECTOR_FEATURES,
    GLOBAL_FEATURES,
    DetectorTensors,
    detector_tensors,
    pad,
)
from hepvld.features.particle_level import (
    PARTICLE_FEATURES,
    ParticleLevelTensors,
    particle_level_tensors,
)
from hepvld.features.preprocessing import DetectorPreprocessor, TargetPreprocessor, spread_floor
from hepvld.features.selection import (
    PAPER_CUTS,
    Cutflow,
    SelectionCuts,
    good_jets,
    good_leptons,
    select,
)

__all__ = [
    "select",
    "Cutflow",
    "SelectionCuts",
    "PAPER_CUTS",
    "good_jets",
    "good_leptons",
    "detector_tensors",
    "DetectorTensors",
    "DETECTOR_FEATURES",
    "GLOBAL_FEATURES",
    "pad",
    "particle_level_tensors",
    "ParticleLevelTensors",
    "PARTICLE_FEATURES",
    "TargetPreprocessor",
    "DetectorPreprocessor",
    "spread_floor",
]
