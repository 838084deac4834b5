"""Awkward events -> padded numpy tensors: selection + cut-flow, features, preprocessing."""

from hepvld.features.detector import (
    DETECTOR_FEATURES,
    GLOBAL_FEATURES,
    DetectorTensors,
    detector_tensors,
    pad,
)
from hepvld.features.particle_level import (
    OBJECT_TYPES,
    WIDE_CUTS,
    TruthSelection,
    event_truth,
    truth_objects,
    truth_selection,
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
    "OBJECT_TYPES",
    "PAPER_CUTS",
    "WIDE_CUTS",
    "Cutflow",
    "DetectorPreprocessor",
    "DetectorTensors",
    "SelectionCuts",
    "TargetPreprocessor",
    "TruthSelection",
    "detector_tensors",
    "event_truth",
    "good_jets",
    "good_leptons",
    "pad",
    "select",
    "spread_floor",
    "truth_objects",
    "truth_selection",
]
