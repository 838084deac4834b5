"""``python -m hepvld.demo``: runs ``hepvld demo`` (:mod:`hepvld.cli.demo`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``hepvld demo`` (:func:`hepvld.cli.demo.main`)."""
    from hepvld.cli.demo import main as cli_main

    return cli_main(argv, prog="python -m hepvld.demo")


if __name__ == "__main__":
    sys.exit(main())
