"""Semi-leptonic tt̄ event generation: Pythia 8, fastjet, a CMS-like detector, ROOT output.

The command line is ``python -m hepvld.generate`` (see ``--help``); the Python entry
point is :func:`generate`::

    from hepvld.generate import generate

    summary = generate("ttbar.root", 10_000, seed=1, workers=4)
    print(summary.cutflow)

The output schema is documented in ``docs/schema.md``, the detector in
``docs/detector.md``. Needs the ``generate`` extra (``pythia8mc``, ``fastjet``); the
detector formulas (:mod:`hepvld.generate.detector`) are pure numpy.
"""

from __future__ import annotations

from hepvld.generate.config import GeneratorSettings
from hepvld.generate.runner import GenerationSummary, generate
from hepvld.generate.selection import CUTS, Cutflow

__all__ = ["CUTS", "Cutflow", "GenerationSummary", "GeneratorSettings", "generate"]
