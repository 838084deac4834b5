"""Pure kinematics on awkward/numpy arrays with ``vector``."""

from hepvld.physics.constants import (
    COMPONENTS,
    DECAY_PRODUCTS,
    DERIVED,
    PARTONS,
    TARGET_DIM,
    target_index,
    target_labels,
)

__all__ = [
    "COMPONENTS",
    "DECAY_PRODUCTS",
    "DERIVED",
    "PARTONS",
    "TARGET_DIM",
    "target_index",
    "target_labels",
]
