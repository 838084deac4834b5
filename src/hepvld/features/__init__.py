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
    "DETECTOR_FEATURES",
    "GLOBAL_FEATURES",
    "PAPER_CUTS",
    "PARTICLE_FEATURES",
    "Cutflow",
    "DetectorPreprocessor",
    "DetectorTensors",
    "ParticleLevelTensors",
    "SelectionCuts",
    "TargetPreprocessor",
    "detector_tensors",
    "good_jets",
    "good_leptons",
    "pad",
    "particle_level_tensors",
    "select",
    "spread_floor",
]
