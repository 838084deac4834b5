"""hepvld: generative unfolding for collider physics.

Latent Variational Diffusion (VLD, Shmakov et al. 2023) and its baselines, trained on
NanoAOD-flavoured ROOT files and called from coffea analyses.

Heavy dependencies (torch, coffea, pythia8mc) are imported lazily: ``import hepvld`` is
cheap and works without the optional extras.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load", "unfold"]


def __getattr__(name: str) -> Any:
    if name in ("load", "unfold"):
        from hepvld import api

        return getattr(api, name)
    raise AttributeError(f"module 'hepvld' has no attribute {name!r}")
