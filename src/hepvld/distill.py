"""``python -m hepvld.distill RUN --steps 4``: the distillation command line
(:mod:`hepvld.cli.distill`); the library is :mod:`hepvld.training.distill` (rounds),
:mod:`hepvld.models.student` (students in ``RUN/distilled``) and
:mod:`hepvld.diffusion.distillation` (the maths)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``hepvld distill`` (:func:`hepvld.cli.distill.main`), for ``python -m hepvld.distill``."""
    from hepvld.cli.distill import main as cli_main

    return cli_main(argv, prog="python -m hepvld.distill")


if __name__ == "__main__":
    sys.exit(main())
