"""Pure kinematics on awkward/numpy arrays with ``vector``: partons, 55-vector <-> Momentum4D."""

from hepvld.physics.constants import (
    COMPONENTS,
    DECAY_PRODUCTS,
    DERIVED,
    PARTONS,
    TARGET_DIM,
    target_index,
    target_labels,
)
from hepvld.physics.kinematics import components_to_p4, p4_components, p4_ptetaphim
from hepvld.physics.partons import (
    DECAY_CATEGORIES,
    DecayChain,
    decay_chain,
    momenta_to_targets,
    parton_momenta,
    parton_targets,
    targets_to_momenta,
)

__all__ = [
    "COMPONENTS",
    "DECAY_CATEGORIES",
    "DECAY_PRODUCTS",
    "DERIVED",
    "PARTONS",
    "TARGET_DIM",
    "DecayChain",
    "components_to_p4",
    "decay_chain",
    "momenta_to_targets",
    "p4_components",
    "p4_ptetaphim",
    "parton_momenta",
    "parton_targets",
    "target_index",
    "target_labels",
    "targets_to_momenta",
]
