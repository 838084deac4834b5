"""Names and ordering of the parton-level target (the paper's 55-dim vector)."""

from __future__ import annotations

__all__ = [
    "COMPONENTS",
    "DECAY_PRODUCTS",
    "DERIVED",
    "PARTONS",
    "TARGET_DIM",
    "target_index",
    "target_labels",
]

#: The 11 parton-level particles, in the paper's order.
PARTONS: tuple[str, ...] = (
    "b_lep",
    "nu",
    "lep",
    "b_had",
    "q1",
    "q2",
    "W_lep",
    "W_had",
    "t_lep",
    "t_had",
    "ttbar",
)

#: Components per particle: mass [GeV], log(E / GeV), px, py, pz [GeV].
COMPONENTS: tuple[str, ...] = ("M", "logE", "px", "py", "pz")

#: Size of the flat target vector, ``len(PARTONS) * len(COMPONENTS)`` = 55.
TARGET_DIM: int = len(PARTONS) * len(COMPONENTS)

#: The six hard-process decay products (leaves of the decay tree).
DECAY_PRODUCTS: tuple[str, ...] = PARTONS[:6]

#: Composite particles and the leaves they are summed from.
DERIVED: dict[str, tuple[str, ...]] = {
    "W_lep": ("nu", "lep"),
    "W_had": ("q1", "q2"),
    "t_lep": ("b_lep", "nu", "lep"),
    "t_had": ("b_had", "q1", "q2"),
    "ttbar": ("b_lep", "nu", "lep", "b_had", "q1", "q2"),
}


def target_index(particle: str, component: str) -> int:
    """Flat index of ``component`` of ``particle`` in the 55-vector."""
    try:
        return PARTONS.index(particle) * len(COMPONENTS) + COMPONENTS.index(component)
    except ValueError:
        raise KeyError(
            f"unknown target {particle!r}/{component!r}; partons are {PARTONS}, "
            f"components are {COMPONENTS}"
        ) from None


def target_labels() -> list[str]:
    """``["b_lep/M", "b_lep/logE", ...]``: one label per entry of the 55-vector."""
    return [f"{p}/{c}" for p in PARTONS for c in COMPONENTS]
