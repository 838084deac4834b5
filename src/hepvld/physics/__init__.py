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
    "DECAY_PRODUCTS",
    "DERIVED",
    "PARTONS",
    "TARGET_DIM",
    "target_index",
    "target_labels",
    "p4_ptetaphim",
    "p4_components",
    "components_to_p4",
    "DECAY_CATEGORIES",
    "DecayChain",
    "decay_chain",
    "parton_momenta",
    "parton_targets",
    "targets_to_momenta",
    "momenta_to_targets",
]
